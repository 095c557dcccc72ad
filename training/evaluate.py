"""Stage `evaluate`: held-out metrics of the trained model, logged to its MLflow run.

    python training/evaluate.py models/model.pt patches/test.npz data/test data/real/valid reports

Patch level: accuracy, F1 (score > 0) and ROC AUC on held-out labelled patches. Pixel level,
on held-out synthetic frames with ground truth: IoU and F1 of the arc mask inside the sky
disc, from the raster scan alone and after the dense CRF. Real frames (``data/real/valid``:
imagers and scenes training never saw), against the reference masks ``<file>.ref.npz``
(ignored pixels not scored): pixel IoU and F1, the share of reference arcs found and of
predicted arcs that are real (:class:`~arcscan.core.metrics.ArcDetection`), and the share of
the sky claimed on arc-free frames, also above ``sky.near_horizon_elevation`` alone (where the
imager's elevation is known; below it arcs are flagged as distorted and the horizon glows). Writes ``reports/metrics.json``, ``reports/real_frames.json``,
``reports/loss.png``, ``reports/roc.png`` and overlays in ``reports/overlays/``.
"""

import json
import sys
from pathlib import Path

import mlflow
import numpy as np

from arcscan import mlops
from arcscan.config import load_settings
from arcscan.io.frames import read_frames
from arcscan.io.reference import REFERENCE_SUFFIX, references
from arcscan.core.metrics import ArcDetection, MaskAgreement, patch_metrics
from arcscan.core.model import load_checkpoint
from arcscan.core.patches import PatchSet
from arcscan.core.plots import loss_curves, roc
from arcscan.core.progress import progress
from arcscan.core.render import overlay, save_png
from arcscan.core.segment import Segmenter
from arcscan.core.synth import mask_path, read_masks
from arcscan.core.train import predict_scores


def real_metrics(segmenter: Segmenter, folder: Path, reports: Path) -> tuple[dict, list[dict], list[Path]]:
    """Metrics on the real validation frames against their reference masks; per-frame rows;
    overlays (reference outlines green) of the first frame of each file."""
    pixels, scan_pixels, arcs, arc_free, arc_free_high = MaskAgreement(), MaskAgreement(), ArcDetection(), [], []
    near_horizon = segmenter.find_sky.config.near_horizon_elevation
    rows, overlays = [], []
    found = references(folder)
    if not found:
        raise SystemExit(f"{folder}: no reference masks (*{REFERENCE_SUFFIX}); run `make data`")
    for reference in progress(found, desc="real frames", unit="file"):
        name, instances, ignored = reference.frames.name, reference.arcs, reference.ignore
        for frame in read_frames(reference.frames):
            result = segmenter(frame)
            truth, scored = instances[frame.index], result.sky & ~ignored[frame.index]
            row = {"file": name, "frame": frame.index, "sky": result.sky_source, "scale": round(result.scale, 4),
                   "reference_arcs": int(len(np.unique(truth[truth > 0]))), "claimed": float(result.mask[scored].mean())}
            geometry = segmenter.find_sky.geometry(frame.site, frame.imager, frame.image.shape)
            if geometry is not None:
                high = scored & (np.nan_to_num(geometry.elevation, nan=-90.0) >= near_horizon)
                row["claimed_above_near_horizon"] = float(result.mask[high].mean()) if high.any() else 0.0
            if truth.any():
                single = MaskAgreement()
                for agreement in (pixels, single):
                    agreement.add(result.mask, truth > 0, scored)
                scan_pixels.add(result.mask_scan, truth > 0, scored)
                detection = ArcDetection()
                min_area = max(1, round(segmenter.objects.min_area / result.scale**2))
                for counter in (arcs, detection):
                    counter.add(result.mask, truth, ~scored, min_area)
                row.update(iou=single.iou(), found=detection.found, predicted=detection.predicted, real=detection.real)
            else:
                arc_free.append(row["claimed"])
                if "claimed_above_near_horizon" in row:
                    arc_free_high.append(row["claimed_above_near_horizon"])
            rows.append(row)
            if frame.index == 0:
                picture = overlay(result.image01, result.mask, truth > 0)
                overlays.append(save_png(picture, reports / "overlays" / f"real_{name.split('.')[0]}.png"))
    metrics = {
        "real_pixel_iou": pixels.iou(),
        "real_pixel_f1": pixels.f1(),
        "real_pixel_iou_scan": scan_pixels.iou(),
        "real_arcs_found": arcs.found_share(),
        "real_arcs_real": arcs.real_share(),
        "real_reference_arcs": arcs.reference,
        "real_predicted_arcs": arcs.predicted,
        "real_arcfree_sky_claimed": float(np.mean(arc_free)) if arc_free else float("nan"),
        "real_arcfree_sky_claimed_max": float(np.max(arc_free)) if arc_free else float("nan"),
        "real_arcfree_sky_claimed_above_near_horizon": float(np.mean(arc_free_high)) if arc_free_high else float("nan"),
        "real_arc_frames": sum(1 for r in rows if r["reference_arcs"]),
        "real_arcfree_frames": len(arc_free),
    }
    return metrics, rows, overlays


def main(checkpoint: Path, test_patches: Path, test_frames: Path, real_frames: Path, reports: Path) -> None:
    settings = load_settings()
    trained = load_checkpoint(checkpoint)
    segmenter = settings.segmenter(trained)

    test = PatchSet.load(test_patches)
    scores = predict_scores(trained.model, test.images)
    patch = patch_metrics(test.labels, scores)

    scan, crf = MaskAgreement(), MaskAgreement()
    timings, overlays = [], []
    for path in progress(sorted(test_frames.glob("*.pgm*")), desc="evaluate", unit="file"):
        masks = read_masks(mask_path(path))
        for frame, truth in zip(read_frames(path), masks):
            result = segmenter(frame)
            scan.add(result.mask_scan, truth, result.sky)
            crf.add(result.mask, truth, result.sky)
            timings.append(result.scan_ms + result.crf_ms)
            if len(overlays) < settings.evaluate.overlays and frame.index % 10 == 0 and truth.any():
                overlays.append(save_png(overlay(result.image01, result.mask, truth), reports / "overlays" / f"{path.name.split('.')[0]}_{frame.index:02d}.png"))
    real, real_rows, real_overlays = real_metrics(segmenter, real_frames, reports)
    overlays += real_overlays
    metrics = {
        "patch_accuracy": patch["accuracy"],
        "patch_f1": patch["f1"],
        "patch_roc_auc": patch["roc_auc"],
        "pixel_iou_scan": scan.iou(),
        "pixel_f1_scan": scan.f1(),
        "pixel_iou_crf": crf.iou(),
        "pixel_f1_crf": crf.f1(),
        "test_patches": len(test),
        "test_frames": len(timings),
        "ms_per_frame_median": float(np.median(timings)),
        **real,
    }
    reports.mkdir(exist_ok=True)
    (reports / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (reports / "real_frames.json").write_text(json.dumps(real_rows, indent=2) + "\n")
    history = json.loads((reports / "train_history.json").read_text())["epochs"]
    loss_curves(history, reports / "loss.png")
    roc(test.labels, scores, patch["roc_auc"], reports / "roc.png")

    mlops.configure()
    run_id = json.loads((checkpoint.parent / "run.json").read_text())["run_id"]
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(metrics)
        for path in [reports / "loss.png", reports / "roc.png", *overlays]:
            mlflow.log_artifact(str(path), artifact_path="evaluation")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    with mlops.failures_reported("evaluate"):
        main(*(Path(arg) for arg in sys.argv[1:6]))
