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
    at least ``overlap`` of its scored pixels; a predicted arc (an 8-connected region of the
    mask of at least ``min_area`` scored pixels, given per frame) is *real* when at least ``overlap`` of its
    scored pixels lie on reference arcs. Scored pixels are those not ignored.
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
        regions = label(predicted & scored, connectivity=2)
        on_arc = (arcs > 0) & scored
        for k in range(1, regions.max() + 1):
            region = regions == k
            area = int(region.sum())
            if area >= min_area:
                self.predicted += 1
                self.real += int((region & on_arc).sum() >= self.overlap * area)

    def found_share(self) -> float:
        """Share of reference arcs found (1.0 when there are none)."""
        return self.found / self.reference if self.reference else 1.0

    def real_share(self) -> float:
        """Share of predicted arcs that are real (1.0 when none were predicted)."""
        return self.real / self.predicted if self.predicted else 1.0
