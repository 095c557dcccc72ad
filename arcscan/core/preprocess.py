"""From raw 16-bit counts to the model's input: dark subtraction, robust scaling, sky disc.

An all-sky imager's fisheye lens projects the sky onto a disc; outside it (the dark corners)
the CCD sees only its background and stray light, which is also our dark estimate. Inside,
intensities are scaled by robust percentiles so that frames from different imagers, nights
and exposures land on a common [0, 1] scale. Training patches, raster scans and outputs all
use this one function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PreprocessConfig:
    """Frame size, sky-disc geometry (pixels; x right, y down) and intensity scaling."""

    frame_shape: tuple[int, int] = (256, 256)  # (height, width) the model and disc are set up for
    fov_center: tuple[float, float] = (127.5, 127.5)
    fov_radius: float = 112.0
    low_percentile: float = 1.0
    high_percentile: float = 99.5
    min_range: float = 300.0  # counts; keeps noise-only frames from being stretched to full scale


def fov_mask(shape: tuple[int, int], config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """Boolean mask of the sky disc."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    cx, cy = config.fov_center
    return (cols - cx) ** 2 + (rows - cy) ** 2 <= config.fov_radius**2


def dark_level(image: np.ndarray, fov: np.ndarray, fallback: float | None = None) -> float:
    """Median of the pixels outside the sky disc; ``fallback`` (e.g. the CCD background from
    the metadata) when fewer than 100 such pixels exist."""
    outside = image[~fov]
    if outside.size >= 100:
        return float(np.median(outside))
    if fallback is not None:
        return float(fallback)
    return float(np.percentile(image, 0.5))


def normalize(
    image: np.ndarray,
    config: PreprocessConfig = PreprocessConfig(),
    background: float | None = None,
    fov: np.ndarray | None = None,
) -> np.ndarray:
    """Raw counts -> float32 in [0, 1], zero outside the sky disc.

    ``background`` is the fallback dark level (the frame's ``Ccd background`` metadata);
    ``fov`` the sky disc of ``fov_mask(image.shape, config)`` when the caller has it already.
    """
    fov = fov_mask(image.shape, config) if fov is None else fov
    counts = image.astype(np.float32) - dark_level(image, fov, background)
    sky = counts[fov]
    low, high = np.percentile(sky, [config.low_percentile, config.high_percentile])
    scale = max(float(high - low), config.min_range)
    out = np.clip((counts - low) / scale, 0.0, 1.0)
    out[~fov] = 0.0
    return out.astype(np.float32)
