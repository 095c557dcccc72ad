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
from scipy.ndimage import gaussian_filter, median_filter

from arcscan.core.geometry import Sky, rescale
from arcscan.io.base import Frame


@dataclass(frozen=True)
class PreprocessConfig:
    """The model's scale (sky radius in pixels) and the intensity scaling."""

    sky_radius: float = 112.0  # pixels: every frame is resampled so that its sky has this radius
    flatten_sigma: float = 16.0  # model pixels: the smooth sky (Gaussian of this width) is subtracted; 0: off
    low_percentile: float = 1.0
    high_percentile: float = 99.5
    min_snr: float = 20.0  # the stretch spans at least this many noise sigmas (noise-only skies stay dim)


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
    scale = sky.scale(config.sky_radius)
    image01 = normalize(frame.image, config, frame.ccd_background, sky.mask, config.flatten_sigma / scale)
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


def noise_sigma(image: np.ndarray, fov: np.ndarray) -> float:
    """Robust per-pixel noise: 1.4826 x the median absolute residual from a 3 x 3 median."""
    residual = (image - median_filter(image, size=3))[fov]
    return float(1.4826 * np.median(np.abs(residual - np.median(residual))))


def flatten(counts: np.ndarray, fov: np.ndarray, sigma: float) -> np.ndarray:
    """``counts`` minus its smooth sky: a Gaussian of ``sigma`` pixels normalised within the
    sky, so the rim is not darkened. What is wider than an arc goes (vignetting, the bright
    horizon, twilight, moon glow, diffuse aurora); arcs, stars and edges stay."""
    weight = gaussian_filter(fov.astype(np.float32), sigma)
    smooth = gaussian_filter(np.where(fov, counts, 0.0).astype(np.float32), sigma) / np.maximum(weight, 1e-6)
    return counts - smooth


def normalize(image: np.ndarray, config: PreprocessConfig, background: float | None, fov: np.ndarray, flatten_sigma: float = 0.0) -> np.ndarray:
    """Raw counts -> float32 in [0, 1], zero outside the sky ``fov`` (a boolean mask).

    The dark level (outside the sky; ``background``, the frame's ``Ccd background``, when
    there is no outside) is subtracted, then the smooth sky of ``flatten_sigma`` pixels when
    given (:func:`flatten`); the sky's ``low_percentile`` .. ``high_percentile`` are
    stretched to 0 .. 1, over at least ``min_snr`` noise sigmas. Counts, rescaled products
    and 8-bit cameras thus land on one scale: what matters is contrast against the noise.
    """
    counts = image.astype(np.float32) - dark_level(image, fov, background)
    if flatten_sigma > 0:
        counts = flatten(counts, fov, flatten_sigma)
    sky = counts[fov]
    low, high = np.percentile(sky, [config.low_percentile, config.high_percentile])
    scale = max(float(high - low), config.min_snr * noise_sigma(counts, fov), 1e-6)
    out = np.clip((counts - low) / scale, 0.0, 1.0)
    out[~fov] = 0.0
    return out.astype(np.float32)
