"""Plots of training and evaluation: loss curves and ROC curves (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


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
