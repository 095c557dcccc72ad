"""Images for people and clients: mask overlays on frames and mask PNGs (numpy + Pillow only,
so the serving path does not import matplotlib)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import binary_erosion


def overlay(image01: np.ndarray, mask: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 picture: the frame in grey, the predicted arc mask tinted red, and the
    ground-truth outline (when given) in green."""
    grey = (np.clip(image01, 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    rgb[mask] = 0.55 * rgb[mask] + 0.45 * np.array([255, 40, 40])
    if truth is not None:
        rgb[truth & ~binary_erosion(truth)] = (60, 255, 60)
    return rgb.astype(np.uint8)


def _image(array: np.ndarray) -> Image.Image:
    """A boolean mask becomes 8-bit 0/255; anything else is taken as uint8 pixels."""
    return Image.fromarray(array.astype(np.uint8) * 255 if array.dtype == bool else array)


def mask_png(mask: np.ndarray) -> bytes:
    """A boolean mask as PNG bytes (0 / 255)."""
    buffer = io.BytesIO()
    _image(mask).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(rgb_or_mask: np.ndarray, path: str | Path) -> Path:
    """Write an RGB image, or a boolean mask as an 8-bit 0/255 PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _image(rgb_or_mask).save(path)
    return path
