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
from arcscan.core.metrics import MaskAgreement, RealFrameScores, patch_metrics
from arcscan.core.model import load_checkpoint
from arcscan.core.patches import PatchSet
from arcscan.core.plots import loss_curves, roc
from arcscan.core.progress import progress
from arcscan.core.render import overlay, save_png
from arcscan.core.segment import Segmenter
from arcscan.core.synth import mask_path, read_masks
from arcscan.core.train import predict_scores


def real_metrics(segmenter: Segmenter, folder: Path, reports: Path) -> tuple[dict, list[dict], list[Path]]:
    """Metrics on the real validation frames against their reference masks
    (:class:`~arcscan.core.metrics.RealFrameScores`); per-frame rows; overlays (reference
    outlines green) of the first frame of each file."""
    scores = RealFrameScores(segmenter.find_sky.config.near_horizon_elevation)
    rows, overlays = [], []
    found = references(folder)
    if not found:
        raise SystemExit(f"{folder}: no reference masks (*{REFERENCE_SUFFIX}); run `make data`")
    for reference in progress(found, desc="real frames", unit="file"):
        name = reference.frames.name
        for frame in read_frames(reference.frames):
            result, truth = segmenter(frame), reference.arcs[frame.index]
            geometry = segmenter.find_sky.geometry(frame.site, frame.imager, frame.image.shape)
            row = scores.add(result.mask, result.mask_scan, result.sky, truth, reference.ignore[frame.index],
                             segmenter.min_area_at(result.scale), None if geometry is None else geometry.elevation)
            rows.append({"file": name, "frame": frame.index, "sky": result.sky_source, "scale": round(result.scale, 4), **row})
            if frame.index == 0:
                picture = overlay(result.image01, result.mask, truth > 0)
                overlays.append(save_png(picture, reports / "overlays" / f"real_{name.split('.')[0]}.png"))
    return scores.metrics(), rows, overlays


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
