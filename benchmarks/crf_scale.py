"""The CRF's intensity scale: the pipeline's model re-scored with other ``crf.bilateral_srgb_noise``
and ``crf.guide_sigma`` values, on the real validation frames and the held-out synthetic frames.

    python benchmarks/crf_scale.py [--checkpoint models/model.pt] [--output reports/bench_crf_scale.json]

Each frame is scanned once (params.yaml's scan); the CRF and the arc objects then run with each
setting (:meth:`~arcscan.core.segment.Segmenter.finish`). Per setting: real pixel IoU (pooled and
per frame), reference arcs found, predicted arcs real, the share of the arc-free sky claimed, and
the synthetic pixel IoU after the CRF; the same figures as ``training/evaluate.py``. And, on
frames the setting was not chosen on, the hand labels of the real training frames
(``data/real/labels.csv``): how many "arc" and how many "other" labels the mask covers.
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from arcscan.config import load_settings  # noqa: E402
from arcscan.core.metrics import MaskAgreement, RealFrameScores  # noqa: E402
from arcscan.core.model import load_checkpoint  # noqa: E402
from arcscan.core.patches import POSITIVE, read_label_csv  # noqa: E402
from arcscan.core.segment import Segmenter  # noqa: E402
from arcscan.core.synth import mask_path, read_masks  # noqa: E402
from arcscan.io.frames import read_frames  # noqa: E402
from arcscan.io.reference import references  # noqa: E402

SETTINGS = [{"bilateral_srgb_noise": k} for k in (1.5, 2.0, 2.5, 3.0, 4.0)] + [{"guide_sigma": s} for s in (0.7, 1.5)]


def labelled_frames(segmenter: Segmenter, folder: Path) -> list:
    """The real training frames that carry hand labels, scanned, with their labels."""
    by_frame: dict[tuple[str, int], list[dict]] = {}
    for row in read_label_csv(folder / "labels.csv"):
        by_frame.setdefault((row["file"], int(row["frame"])), []).append(row)
    frames = []
    for (name, index), rows in sorted(by_frame.items()):
        frame = read_frames(folder / "train" / name)[index]
        frames.append((frame, *segmenter.scan_frame(frame)[:2], rows))
    return frames


def score(segmenter: Segmenter, real: list, synthetic: list, labelled: list) -> dict:
    """Real and synthetic figures of the segmenter's CRF on the scanned frames."""
    real_scores, per_frame, synth = RealFrameScores(segmenter.find_sky.config.near_horizon_elevation), [], MaskAgreement()
    for frame, view, probability, instances, ignored in real:
        result = segmenter.finish(frame, view, probability, 0.0)
        row = real_scores.add(result.mask, result.mask_scan, result.sky, instances, ignored, segmenter.min_area_at(result.scale))
        if "iou" in row:
            per_frame.append({"file": Path(frame.source).name, "iou": row["iou"]})
    for frame, view, probability, truth in synthetic:
        result = segmenter.finish(frame, view, probability, 0.0)
        synth.add(result.mask, truth, result.sky)
    covered = {"arc": [0, 0], "other": [0, 0]}
    for frame, view, probability, rows in labelled:
        mask = segmenter.finish(frame, view, probability, 0.0).mask
        for row in rows:
            counts = covered["arc" if row["label"] == POSITIVE else "other"]
            counts[0] += int(mask[int(row["y"]), int(row["x"])])
            counts[1] += 1
    real = real_scores.metrics()
    return {"labels_in_mask": {label: f"{inside}/{total}" for label, (inside, total) in covered.items()},
            "real_pixel_iou": real["real_pixel_iou"], "real_iou_per_frame": per_frame,
            "real_arcs_found": f"{real_scores.arcs.found}/{real_scores.arcs.reference}",
            "real_arcs_real": f"{real_scores.arcs.real}/{real_scores.arcs.predicted}",
            "real_arcfree_sky_claimed": real["real_arcfree_sky_claimed"], "synthetic_pixel_iou_crf": synth.iou()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "model.pt")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "bench_crf_scale.json")
    args = parser.parse_args()
    settings = load_settings(ROOT / "params.yaml")
    torch.set_num_threads(settings.train.threads)
    segmenter = settings.segmenter(load_checkpoint(args.checkpoint))
    real = [(frame, *segmenter.scan_frame(frame)[:2], reference.arcs[frame.index], reference.ignore[frame.index])
            for reference in references(ROOT / "data" / "real" / "valid") for frame in read_frames(reference.frames)]
    synthetic = [(frame, *segmenter.scan_frame(frame)[:2], truth) for path in sorted((ROOT / "data" / "test").glob("*.pgm*"))
                 for frame, truth in zip(read_frames(path), read_masks(mask_path(path)))]
    labelled = labelled_frames(segmenter, ROOT / "data" / "real")
    rows = []
    for change in [{}, *SETTINGS]:
        variant = copy.copy(segmenter)
        variant.crf = replace(segmenter.crf, **change)
        rows.append({"change": change or "params.yaml", **score(variant, real, synthetic, labelled)})
        print(json.dumps(rows[-1]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"crf": segmenter.crf.__dict__, "checkpoint": str(args.checkpoint), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
