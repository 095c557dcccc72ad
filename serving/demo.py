"""The serving half of ``make demo``: serve the champion, stream sample frames through it.

    python serving/demo.py --output demo-output

Starts TorchServe on the archive built by ``make mar``, replays the held-out synthetic
minutes (``data/test``) and the real frames of the starter dataset (``data/real``: THEMIS
stream0 and level-1 CDF, DASC FITS, OATH and TREx PNG) through the stream client (as fast as the endpoint allows), stops the server, then
writes an overlay per frame (``overlays/``) and a summary (``summary.json``, ``summary.md``):
per file the frames, the arc fraction, scan/CRF time, end-to-end latency and, for synthetic
frames, the IoU of the served masks against the ground truth.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from arcscan.config import load_settings
from arcscan.io.frames import read_frames
from arcscan.core.metrics import MaskAgreement
from arcscan.config import Settings
from arcscan.core.patches import view_of
from arcscan.core.render import overlay, save_png
from arcscan.ops.stream import RESULTS, StreamConfig, read_ledger, run_stream
from arcscan.ops.stream.sources import replay_files
from arcscan.core.synth import mask_path, read_masks

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve  # noqa: E402  (serving/serve.py: start and stop TorchServe)

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT / "data" / "real"  # real frames of several imagers, in the starter dataset


def summarise(output: Path, sources: dict[str, Path], settings: Settings) -> dict:
    """Overlays and per-file figures from the stream client's ledger."""
    find_sky = settings.sky_finder()
    by_file: dict[str, list[dict]] = {}
    for entry in read_ledger(output / RESULTS):
        by_file.setdefault(entry["file"], []).append(entry)
    files = {}
    for name, entries in sorted(by_file.items()):
        path = sources[name]
        frames = read_frames(path)
        truth = read_masks(mask_path(path)) if mask_path(path).exists() else None
        agreement = MaskAgreement()
        for entry in sorted(entries, key=lambda e: e["index"]):
            frame = frames[entry["index"]]
            mask = np.asarray(Image.open(io.BytesIO((output / entry["mask"]).read_bytes()))) > 0
            view = view_of(frame, find_sky, settings.preprocess)
            frame_truth = None if truth is None else truth[entry["index"]]
            save_png(overlay(view.image01, mask, frame_truth), output / "overlays" / f"{name.split('.')[0]}_{entry['index']:02d}.png")
            if frame_truth is not None:
                agreement.add(mask, frame_truth, view.sky.mask)
        latencies = [e["latency_ms"] for e in entries]
        files[name] = {
            "frames": len(entries),
            "model_version": entries[0]["model_version"],
            "arc_fraction_mean": float(np.mean([e["arc_fraction"] for e in entries])),
            "scan_ms_median": float(np.median([e["scan_ms"] for e in entries])),
            "crf_ms_median": float(np.median([e["crf_ms"] for e in entries])),
            "latency_ms_median": float(np.median(latencies)),
            "iou_vs_truth": agreement.iou() if truth is not None else None,
        }
    return files


def markdown(files: dict, summary: dict) -> str:
    lines = [
        f"Streamed {summary['sent']} frames: {summary['succeeded']} answered, {summary['failed']} failed, "
        f"{summary['duration']:.1f} s.",
        "",
        "| file | frames | model version | arc fraction (mean) | scan ms | CRF ms | latency ms (median) | IoU vs truth |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in files.items():
        iou = "—" if row["iou_vs_truth"] is None else f"{row['iou_vs_truth']:.3f}"
        lines.append(
            f"| {name} | {row['frames']} | {row['model_version']} | {row['arc_fraction_mean']:.3f} | "
            f"{row['scan_ms_median']:.0f} | {row['crf_ms_median']:.0f} | {row['latency_ms_median']:.0f} | {iou} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "demo-output")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    settings = load_settings(ROOT / "params.yaml")
    files = sorted((ROOT / "data" / "test").glob("*.pgm.gz"))
    files += replay_files([REAL_DATA / "train", REAL_DATA / "valid"])
    sources = {path.name: path for path in files}
    shutil.rmtree(args.output, ignore_errors=True)  # a fresh run: the ledger would skip frames already answered

    server = serve.start()
    try:
        stream = StreamConfig(url=server.predictions_url(), token=server.key(), output=args.output, concurrency=args.concurrency)
        summary = run_stream(stream, replay=files)
    finally:
        serve.stop()
    per_file = summarise(args.output, sources, settings)
    report = {"stream": vars(summary), "files": per_file}
    (args.output / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.output / "summary.md").write_text(markdown(per_file, vars(summary)))
    print((args.output / "summary.md").read_text())
    if summary.failed:
        raise SystemExit(f"{summary.failed} frames failed: see {args.output / 'failed.jsonl'}")


if __name__ == "__main__":
    main()
