"""Evaluation metrics: patch-level classification and pixel-level mask agreement."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score


def patch_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Accuracy and F1 at score > 0, and ROC AUC, of binary labels (1 arc, 0 other)."""
    predicted = (scores > 0).astype(int)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan"),
    }


class MaskAgreement:
    """Pixel counts accumulated over frames: IoU and F1 of predicted vs true arc pixels,
    counted inside the sky disc only (micro-averaged: big arcs weigh more than small ones)."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray, fov: np.ndarray) -> None:
        p, t = predicted & fov, truth & fov
        self.tp += int((p & t).sum())
        self.fp += int((p & ~t).sum())
        self.fn += int((~p & t).sum())

    def iou(self) -> float:
        union = self.tp + self.fp + self.fn
        return self.tp / union if union else 1.0

    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 1.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


class ArcDetection:
    """Arc-level agreement with reference arcs, accumulated over frames.

    A reference arc (one label of an instance map) is *found* when the predicted mask covers
    at least ``overlap`` of its scored pixels. A predicted arc is an 8-connected region of the
    predicted mask, as the product draws it (:func:`arcscan.core.segment.arc_objects`), with at
    least ``min_area`` scored pixels (given per frame); it is *real* when at least ``overlap`` of
    its scored pixels lie on reference arcs. Scored pixels are those not ignored; a region is
    judged on them but not cut by the ignored ones (a predicted arc that crosses an ignore band
    is one arc, not two).
    """

    def __init__(self, overlap: float = 0.3) -> None:
        self.overlap = overlap
        self.reference = self.found = self.predicted = self.real = 0

    def add(self, predicted: np.ndarray, arcs: np.ndarray, ignore: np.ndarray, min_area: int = 20) -> None:
        from skimage.measure import label

        scored = ~ignore
        for k in np.unique(arcs[arcs > 0]):
            pixels = (arcs == k) & scored
            if pixels.any():
                self.reference += 1
                self.found += int((predicted & pixels).sum() >= self.overlap * pixels.sum())
        regions = label(predicted, connectivity=2)
        on_arc = (arcs > 0) & scored
        for k in range(1, regions.max() + 1):
            region = regions == k
            judged = int((region & scored).sum())
            if judged >= min_area:
                self.predicted += 1
                self.real += int((region & on_arc).sum() >= self.overlap * judged)

    def found_share(self) -> float:
        """Share of reference arcs found (1.0 when there are none)."""
        return self.found / self.reference if self.reference else 1.0

    def real_share(self) -> float:
        """Share of predicted arcs that are real (1.0 when none were predicted)."""
        return self.real / self.predicted if self.predicted else 1.0


class RealFrameScores:
    """The figures of segmentations of real frames against reference arc masks, accumulated
    over frames (``reports/metrics.json``'s ``real_*``): pixel IoU and F1 of the mask and of the
    scan's mask (pooled over frames with arcs), :class:`ArcDetection`, and the share of the
    scored sky claimed on arc-free frames, also above ``near_horizon_elevation`` alone (degrees;
    on frames whose elevation is known)."""

    def __init__(self, near_horizon_elevation: float) -> None:
        self.near_horizon_elevation = near_horizon_elevation
        self.pixels, self.scan_pixels, self.arcs = MaskAgreement(), MaskAgreement(), ArcDetection()
        self.arc_frames, self.arc_free, self.arc_free_high = 0, [], []

    def add(self, mask: np.ndarray, mask_scan: np.ndarray, sky: np.ndarray, arcs: np.ndarray, ignore: np.ndarray,
            min_area: int, elevation: np.ndarray | None = None) -> dict:
        """One frame: its final and scan masks and sky, the reference arc instances and ignored
        pixels, the smallest region counted as a predicted arc, the pixels' elevation (degrees,
        NaN off the sky) when known. Returns the frame's own figures."""
        scored = sky & ~ignore
        row = {"reference_arcs": int(len(np.unique(arcs[arcs > 0]))), "claimed": float(mask[scored].mean())}
        if elevation is not None:
            high = scored & (np.nan_to_num(elevation, nan=-90.0) >= self.near_horizon_elevation)
            row["claimed_above_near_horizon"] = float(mask[high].mean()) if high.any() else 0.0
        if not arcs.any():
            self.arc_free.append(row["claimed"])
            if elevation is not None:
                self.arc_free_high.append(row["claimed_above_near_horizon"])
            return row
        self.arc_frames += 1
        single, detection = MaskAgreement(), ArcDetection(self.arcs.overlap)
        for agreement in (self.pixels, single):
            agreement.add(mask, arcs > 0, scored)
        self.scan_pixels.add(mask_scan, arcs > 0, scored)
        for counter in (self.arcs, detection):
            counter.add(mask, arcs, ~scored, min_area)
        return row | {"iou": single.iou(), "found": detection.found, "predicted": detection.predicted, "real": detection.real}

    def metrics(self) -> dict[str, float]:
        """The pooled figures (NaN for the arc-free shares without arc-free frames)."""

        def mean(values: list[float]) -> float:
            return float(np.mean(values)) if values else float("nan")

        return {
            "real_pixel_iou": self.pixels.iou(),
            "real_pixel_f1": self.pixels.f1(),
            "real_pixel_iou_scan": self.scan_pixels.iou(),
            "real_arcs_found": self.arcs.found_share(),
            "real_arcs_real": self.arcs.real_share(),
            "real_reference_arcs": self.arcs.reference,
            "real_predicted_arcs": self.arcs.predicted,
            "real_arcfree_sky_claimed": mean(self.arc_free),
            "real_arcfree_sky_claimed_max": float(np.max(self.arc_free)) if self.arc_free else float("nan"),
            "real_arcfree_sky_claimed_above_near_horizon": mean(self.arc_free_high),
            "real_arc_frames": self.arc_frames,
            "real_arcfree_frames": len(self.arc_free),
        }
