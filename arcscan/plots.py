"""Pictures: mask overlays on frames, loss curves, ROC curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.ndimage import binary_erosion  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~binary_erosion(mask)


def overlay(image01: np.ndarray, mask: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 picture: the frame in grey, the predicted arc mask tinted red, and the
    ground-truth outline (when given) in green."""
    grey = (np.clip(image01, 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    rgb[mask] = 0.55 * rgb[mask] + 0.45 * np.array([255, 40, 40])
    if truth is not None:
        rgb[_outline(truth)] = (60, 255, 60)
    return rgb.astype(np.uint8)


def save_png(rgb_or_mask: np.ndarray, path: str | Path) -> Path:
    """Write an RGB image, or a boolean mask as an 8-bit 0/255 PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = rgb_or_mask.astype(np.uint8) * 255 if rgb_or_mask.dtype == bool else rgb_or_mask
    Image.fromarray(array).save(path)
    return path


def loss_curves(history: list[dict], path: str | Path) -> Path:
    """Training risk, objective and PN risk per epoch."""
    figure, axis = plt.subplots(figsize=(5, 3.2))
    epochs = [h["epoch"] for h in history]
    for key, label in (("risk", "nn PNU risk"), ("objective", "objective stepped on"), ("pn", "PN risk")):
        axis.plot(epochs, [h[key] for h in history], marker="o", ms=3, label=label)
    axis.set(xlabel="epoch", ylabel="risk (sigmoid loss)", title="Training")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def roc(labels: np.ndarray, scores: np.ndarray, auc: float, path: str | Path) -> Path:
    """ROC curve of held-out labelled patches."""
    fpr, tpr, _ = roc_curve(labels, scores)
    figure, axis = plt.subplots(figsize=(3.6, 3.6))
    axis.plot(fpr, tpr, label=f"AUC {auc:.3f}")
    axis.plot([0, 1], [0, 1], ls=":", color="grey")
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title="Held-out patches")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
