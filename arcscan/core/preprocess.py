"""From raw 16-bit counts to the model's input: dark subtraction, robust scaling, model scale.

An all-sky imager's fisheye lens projects the sky onto a disc (:mod:`arcscan.core.geometry`
finds it); outside it (the dark corners) the CCD sees only its background and stray light,
which is also our dark estimate. Inside, intensities are scaled by robust percentiles so that
frames from different imagers, nights and exposures land on a common [0, 1] scale; then the
frame is resampled to the model's scale (its sky ``sky_radius`` pixels across the radius).
Training patches, raster scans and outputs all go through :func:`model_view`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arcscan.core.geometry import Sky, rescale
from arcscan.io.base import Frame


@dataclass(frozen=True)
class PreprocessConfig:
    """The model's scale (sky radius in pixels) and the intensity scaling."""

    sky_radius: float = 112.0  # pixels: every frame is resampled so that its sky has this radius
    low_percentile: float = 1.0
    high_percentile: float = 99.5
    min_range: float = 300.0  # counts; keeps noise-only frames from being stretched to full scale


@dataclass(frozen=True)
class ModelView:
    """A frame as the model sees it: normalised (``image01``, zero outside the sky) at the
    frame's own size and, resampled by ``scale``, at the model's (``model01``, ``model_sky``)."""

    image01: np.ndarray
    sky: Sky
    scale: float
    model01: np.ndarray
    model_sky: np.ndarray


def model_view(frame: Frame, sky: Sky, config: PreprocessConfig = PreprocessConfig()) -> ModelView:
    """Normalise a frame within its sky and resample it to the model's scale."""
    image01 = normalize(frame.image, config, frame.ccd_background, sky.mask)
    scale = sky.scale(config.sky_radius)
    if abs(scale - 1.0) < 1e-3:
        return ModelView(image01, sky, 1.0, image01, sky.mask)
    model_sky = rescale(sky.mask.astype(np.float32), scale) > 0.5
    return ModelView(image01, sky, scale, rescale(image01, scale) * model_sky, model_sky)


def dark_level(image: np.ndarray, fov: np.ndarray, fallback: float | None = None) -> float:
    """Median of the pixels outside the sky disc; ``fallback`` (e.g. the CCD background from
    the metadata) when fewer than 100 such pixels exist."""
    outside = image[~fov]
    if outside.size >= 100:
        return float(np.median(outside))
    if fallback is not None:
        return float(fallback)
    return float(np.percentile(image, 0.5))


def normalize(image: np.ndarray, config: PreprocessConfig, background: float | None, fov: np.ndarray) -> np.ndarray:
    """Raw counts -> float32 in [0, 1], zero outside the sky ``fov`` (a boolean mask).

    ``background`` is the fallback dark level (the frame's ``Ccd background`` metadata).
    """
    counts = image.astype(np.float32) - dark_level(image, fov, background)
    sky = counts[fov]
    low, high = np.percentile(sky, [config.low_percentile, config.high_percentile])
    scale = max(float(high - low), config.min_range)
    out = np.clip((counts - low) / scale, 0.0, 1.0)
    out[~fov] = 0.0
    return out.astype(np.float32)
