"""From raw 16-bit counts to the model's input: dark subtraction, robust scaling, model scale.

An all-sky imager's fisheye lens projects the sky onto a disc (:mod:`arcscan.core.geometry`
finds it); outside it (the dark corners) the CCD sees only its background and stray light,
which is also our dark estimate. Inside, the smooth sky and the glow along the horizon are
subtracted and intensities are scaled by robust percentiles so that
frames from different imagers, nights and exposures land on a common [0, 1] scale; then the
frame is resampled to the model's scale (its sky ``sky_radius`` pixels across the radius).
Training patches, raster scans and outputs all go through :func:`model_view`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from scipy.ndimage import gaussian_filter, grey_opening, map_coordinates, median_filter

from arcscan.core.geometry import Sky, rescale
from arcscan.io.base import Frame


GLOW_MIN_AZIMUTH_DEG = 10  # horizon glow is wider than this in azimuth (1 degree per ray)
GLOW_RAYS = 360  # one ray per degree of azimuth

T = TypeVar("T")


class PerSky(Generic[T]):
    """What depends on a sky mask alone (and a few numbers), computed once for each of the last
    ``size`` masks and kept read-only: a stream or an archive sends one imager's sky again and again."""

    def __init__(self, compute: Callable[..., T], size: int = 8) -> None:
        self.compute, self.size = compute, size
        self._kept: OrderedDict[tuple, T] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, fov: np.ndarray, *args: float | tuple[float, float]) -> T:
        key = (fov.shape, hashlib.blake2b(np.packbits(fov), digest_size=16).digest(), args)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        value = self.compute(fov, *args)
        with self._lock:
            self._kept[key] = value
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return value


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for array in arrays:
        array.setflags(write=False)
    return arrays


@dataclass(frozen=True)
class PreprocessConfig:
    """The model's scale (sky radius in pixels) and the intensity scaling."""

    sky_radius: float = 112.0  # pixels: every frame is resampled so that its sky has this radius
    flatten_sigma: float = 16.0  # model pixels: the smooth sky (Gaussian of this width) is subtracted; 0: off
    low_percentile: float = 1.0
    high_percentile: float = 99.5
    min_snr: float = 20.0  # the stretch spans at least this many noise sigmas (noise-only skies stay dim)
    horizon_glow: float = 0.1  # outer share of the sky radius where the horizon glow may peak (:func:`glow`); 0: off


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
    image01 = normalize(frame.image, config, frame.ccd_background, sky.mask, config.flatten_sigma / scale, sky.center)
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
    weight = _sky_weight(fov, sigma)
    smooth = gaussian_filter(np.where(fov, counts, 0.0).astype(np.float32), sigma) / np.maximum(weight, 1e-6)
    return counts - smooth


_sky_weight = PerSky(lambda fov, sigma: _read_only(gaussian_filter(fov.astype(np.float32), sigma))[0])


@dataclass(frozen=True)
class Rays:
    """A sky's rays from the zenith, one per degree of azimuth, each sampled from the zenith to
    the sky's edge (``ys``, ``xs``: n_rays x n_rho), and each pixel's place on that polar grid
    (``azimuth``, ``radius``: fractional indices, ray 0 repeated after the last)."""

    ys: np.ndarray
    xs: np.ndarray
    azimuth: np.ndarray
    radius: np.ndarray


def rays(fov: np.ndarray, center: tuple[float, float]) -> Rays:
    """The rays of the sky ``fov`` from the zenith ``center`` (x, y) to its edge."""
    cx, cy = center
    theta = np.linspace(0, 2 * np.pi, GLOW_RAYS, endpoint=False)
    reach = int(np.ceil(np.hypot(*fov.shape))) + 1
    steps = np.arange(reach, dtype=np.float32)
    ray_y, ray_x = cy + steps[None] * np.sin(theta[:, None]), cx + steps[None] * np.cos(theta[:, None])
    on_ray = map_coordinates(fov.astype(np.float32), [ray_y, ray_x], order=0, mode="constant") > 0.5
    edge = np.maximum(np.where(on_ray.any(1), reach - 1 - np.argmax(on_ray[:, ::-1], 1), 1), 1).astype(np.float32)  # edge distance per azimuth
    n_rho = int(edge.max()) + 1
    rho = np.linspace(0, 1, n_rho, dtype=np.float32)
    ys, xs = cy + rho[None] * edge[:, None] * np.sin(theta[:, None]), cx + rho[None] * edge[:, None] * np.cos(theta[:, None])
    yy, xx = np.mgrid[: fov.shape[0], : fov.shape[1]]
    azimuth = (np.arctan2(yy - cy, xx - cx) % (2 * np.pi)) / (2 * np.pi) * GLOW_RAYS
    edge_here = np.interp(azimuth, np.arange(GLOW_RAYS + 1), np.concatenate([edge, edge[:1]]))
    radius = np.clip(np.hypot(yy - cy, xx - cx) / edge_here, 0, 1) * (n_rho - 1)
    return Rays(*_read_only(ys, xs, azimuth, radius))


_sky_rays = PerSky(rays)


def glow(counts: np.ndarray, fov: np.ndarray, center: tuple[float, float], outer: float) -> np.ndarray:
    """The horizon glow of a (flattened) sky, to subtract: along each ray from the zenith
    ``center`` (x, y) to the sky's edge (:func:`rays`), the largest profile below the ray's that
    rises to a peak in the ``outer`` share of the ray and falls beyond it (van Rhijn brightening,
    dawn twilight and city light grow toward the horizon; extinction and the lens may dim the last
    degrees), at least 0; kept only where wider than ``GLOW_MIN_AZIMUTH_DEG`` in azimuth, so an
    arc that crosses the edge keeps its contrast. An arc between the zenith and the peak keeps it
    too (the darker sky beyond it bounds the profile); an arc lying along the edge, peaking in the
    outer share, is taken for glow."""
    grid = _sky_rays(fov, tuple(map(float, center)))
    n_rho = grid.ys.shape[1]
    rho = np.linspace(0, 1, n_rho, dtype=np.float32)
    polar = map_coordinates(np.where(fov, counts, 0.0).astype(np.float32), [grid.ys, grid.xs], order=1, mode="nearest")
    smooth = gaussian_filter(polar, (2.0, 0.0), mode=("wrap", "nearest"))  # neighbouring rays averaged, the profile kept sharp
    near_edge = rho >= 1.0 - outer
    peak = np.flatnonzero(near_edge)[0] + np.argmax(smooth[:, near_edge], axis=1)  # per azimuth
    index = np.arange(n_rho)[None]
    inward = np.minimum.accumulate(np.where(index <= peak[:, None], smooth, np.inf)[:, ::-1], axis=1)[:, ::-1]
    outward = np.minimum.accumulate(np.where(index >= peak[:, None], smooth, np.inf), axis=1)
    ring = np.maximum(np.where(index <= peak[:, None], inward, outward), 0.0)  # rises to the peak, falls beyond: the glow
    ring = grey_opening(ring, size=(GLOW_MIN_AZIMUTH_DEG, 1), mode="wrap")  # only what is wider in azimuth: an arc along a ray stays
    ring = gaussian_filter(ring, (3.0, 0.0), mode=("wrap", "nearest"))
    out = map_coordinates(np.concatenate([ring, ring[:1]]), [grid.azimuth, grid.radius], order=1, mode="nearest")  # theta wraps
    return np.where(fov, out, 0.0).astype(np.float32)


def normalize(image: np.ndarray, config: PreprocessConfig, background: float | None, fov: np.ndarray, flatten_sigma: float = 0.0, center: tuple[float, float] | None = None) -> np.ndarray:
    """Raw counts -> float32 in [0, 1], zero outside the sky ``fov`` (a boolean mask).

    The dark level (outside the sky; ``background``, the frame's ``Ccd background``, when
    there is no outside) is subtracted, then the smooth sky of ``flatten_sigma`` pixels when
    given (:func:`flatten`) and, with the zenith ``center`` (x, y), the horizon glow
    (:func:`glow`, ``config.horizon_glow``); the sky's ``low_percentile`` .. ``high_percentile`` are
    stretched to 0 .. 1, over at least ``min_snr`` noise sigmas. Counts, rescaled products
    and 8-bit cameras thus land on one scale: what matters is contrast against the noise.
    """
    counts = image.astype(np.float32) - dark_level(image, fov, background)
    if flatten_sigma > 0:
        counts = flatten(counts, fov, flatten_sigma)
        if config.horizon_glow > 0 and center is not None:
            counts = counts - glow(counts, fov, center, config.horizon_glow)
    sky = counts[fov]
    low, high = np.percentile(sky, [config.low_percentile, config.high_percentile])
    scale = max(float(high - low), config.min_snr * noise_sigma(counts, fov), 1e-6)
    out = np.clip((counts - low) / scale, 0.0, 1.0)
    out[~fov] = 0.0
    return out.astype(np.float32)
