"""Where the sky is in a frame, and the one scale at which the model sees it.

An all-sky lens images the sky onto a disc; where that disc lies, how large it is and how
it is cropped differ from imager to imager (THEMIS 256 px, DASC 512 px, TREx RGB 480 x 553
with the disc cut by the frame edges, OATH cropped to the disc). The sky of a frame comes
from, in this order:

1. the first **imager profile** whose ``site`` and ``imager`` patterns (globs) match the
   frame's metadata: either a per-pixel **elevation map** (a THEMIS skymap ``.sav`` or an
   elevation calibration FITS such as DASC's ``_El.FIT``; sky = elevation >=
   ``min_elevation``) or a **disc** (centre and horizon radius);
   the elevation map is read by the same reader as the imager's pixel geometry
   (:mod:`arcscan.geo.skymap`), flipped (``flip``) into the frames' orientation;
2. else an **estimate from the frame itself** (:func:`estimate_disc`): the lit disc against
   the dark corners, its horizon circle fitted robustly to the disc's outer edge;
3. else (no dark surround to find) the disc inscribed in the frame.

For a disc, the sky above ``min_elevation`` is the concentric disc of radius
``horizon_radius * (90 - min_elevation) / 90`` (the equidistant fisheye of all-sky lenses).

**Pixel geometry.** A profile also gives where each pixel looks on Earth
(:meth:`SkyFinder.geometry`, a :class:`arcscan.geo.skymap.PixelGeometry`): a skymap carries
it; an elevation FITS needs the ``azimuth`` FITS beside it and the site's ``location``
(latitude, longitude in degrees, altitude in metres); a disc with a ``location`` is an ideal
fisheye seen as a map (north up, east right). Arcs are measured on the shell
``emission_altitude_km`` up; arcs reaching below ``near_horizon_elevation`` are flagged.

**Model scale.** Arcs have similar angular sizes on every sky, so every frame is resampled
(bilinear, anti-aliased when shrinking) by ``scale = sky_radius / radius`` before the raster
scan and the CRF: its sky then has the radius the model was trained at (THEMIS's 112 px
above 10 degrees, so THEMIS frames are used as they are, ``scale == 1``). Masks and
probabilities are resampled back to the frame's own pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatch
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from skimage.transform import resize

from arcscan.errors import InputError

if TYPE_CHECKING:
    from arcscan.geo.arcs import ArcGeo
    from arcscan.geo.skymap import PixelGeometry

_ESTIMATE_SIDE = 256  # frames are block-averaged to about this size for the disc estimate


@dataclass(frozen=True)
class ImagerProfile:
    """The sky geometry of one imager, matched on the frame's site and imager (globs): an
    ``elevation`` map file, or a disc (``center`` x, y and ``horizon_radius``, pixels); for
    its pixel geometry an ``azimuth`` FITS and the site ``location`` where the file has none,
    and the ``flip`` (none, rows, columns, both) from the files' arrays to the frames."""

    name: str
    site: str = "*"
    imager: str = "*"
    center: tuple[float, float] | None = None
    horizon_radius: float | None = None
    elevation: str | None = None
    azimuth: str | None = None
    location: tuple[float, float, float] | None = None
    flip: str = "none"

    def __post_init__(self) -> None:
        disc = self.center is not None and self.horizon_radius is not None
        if disc == (self.elevation is not None) or (self.center is None) != (self.horizon_radius is None):
            raise InputError(f"imager profile {self.name!r}: give either elevation or center and horizon_radius")
        if self.center is not None:
            object.__setattr__(self, "center", tuple(float(v) for v in self.center))
        if self.location is not None:
            if len(self.location) != 3:
                raise InputError(f"imager profile {self.name!r}: location is [latitude, longitude, altitude_m], got {list(self.location)}")
            object.__setattr__(self, "location", tuple(float(v) for v in self.location))
        if self.flip not in ("none", "rows", "columns", "both"):
            raise InputError(f"imager profile {self.name!r}: flip {self.flip!r} is not one of none, rows, columns, both")

    def matches(self, site: str, imager: str) -> bool:
        return fnmatch(site.lower(), self.site.lower()) and fnmatch(imager.lower(), self.imager.lower())


@dataclass(frozen=True)
class SkyConfig:
    """Minimum elevation of the sky (degrees) and the imager profiles, first match wins;
    relative calibration paths are taken from ``base_dir`` (the parameters file's folder);
    the emission shell arcs are measured on (km) and the elevation (degrees) below which an
    arc counts as near the horizon."""

    min_elevation: float = 10.0
    imagers: tuple[ImagerProfile, ...] = ()
    base_dir: str = "."
    emission_altitude_km: float = 110.0
    near_horizon_elevation: float = 20.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_elevation < 90:
            raise InputError(f"sky: min_elevation {self.min_elevation} is not in [0, 90)")
        profiles = tuple(p if isinstance(p, ImagerProfile) else ImagerProfile(**p) for p in self.imagers)
        object.__setattr__(self, "imagers", profiles)


@dataclass(frozen=True)
class Sky:
    """The sky of a frame: a mask of its pixels, its centre (x, y), its radius (pixels; of
    the equal-area disc for an elevation map) and where it came from."""

    mask: np.ndarray = field(repr=False)
    center: tuple[float, float]
    radius: float
    source: str

    def scale(self, sky_radius: float) -> float:
        """The resampling factor that brings this sky to the model's ``sky_radius``."""
        return float(sky_radius / self.radius)


def disc_mask(shape: tuple[int, int], center: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean mask of a disc (centre x, y; pixels, y down)."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (cols - center[0]) ** 2 + (rows - center[1]) ** 2 <= radius**2


def sky_fraction(min_elevation: float) -> float:
    """Radius of the sky above ``min_elevation`` over the horizon radius (equidistant fisheye)."""
    return (90.0 - min_elevation) / 90.0


def sky_from_disc(shape: tuple[int, int], center: tuple[float, float], horizon_radius: float, min_elevation: float, source: str) -> Sky:
    radius = horizon_radius * sky_fraction(min_elevation)
    return Sky(disc_mask(shape, center, radius), (float(center[0]), float(center[1])), float(radius), source)


def sky_from_elevation(elevation: np.ndarray, min_elevation: float, source: str) -> Sky:
    """The sky of an elevation map: pixels at or above ``min_elevation`` (NaN is not sky),
    centred on the zenith (the highest pixel)."""
    mask = np.nan_to_num(elevation, nan=-90.0) >= min_elevation
    if mask.sum() < 100:
        raise InputError(f"{source}: fewer than 100 pixels above {min_elevation} degrees elevation")
    zenith_y, zenith_x = np.unravel_index(np.nanargmax(elevation), elevation.shape)
    return Sky(mask, (float(zenith_x), float(zenith_y)), float(np.sqrt(mask.sum() / np.pi)), source)


def estimate_disc(image: np.ndarray) -> tuple[tuple[float, float], float] | None:
    """The horizon circle (centre x, y; radius) of the lit disc of a frame, or None when the
    frame has no dark surround to tell it by.

    The frame is block-averaged to about 256 px and smoothed; pixels brighter than 30% of the
    way from the dark level (2nd percentile) to the typical sky (60th) are lit; the largest lit
    region, holes filled, is the disc. For each of 180 directions from its centroid the
    farthest lit pixel is an edge point (points on the frame border are dropped: the disc may
    be cut there); a circle is fitted by least squares, and edge points well inside the circle
    (trees, buildings, the moon's shadow of an obstruction) are dropped and the fit repeated.
    """
    factor = max(1, int(np.ceil(max(image.shape) / _ESTIMATE_SIDE)))
    height, width = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    small = image[:height, :width].astype(np.float32).reshape(height // factor, factor, width // factor, factor).mean((1, 3))
    smooth = ndimage.gaussian_filter(small, 2.0)
    dark, sky = np.percentile(smooth, [2, 60])
    if sky - dark <= 1e-6 * max(abs(float(sky)), 1.0):
        return None
    lit, count = ndimage.label(smooth > dark + 0.3 * (sky - dark))
    if count == 0:
        return None
    sizes = ndimage.sum_labels(np.ones_like(lit), lit, index=np.arange(1, count + 1))
    disc = ndimage.binary_fill_holes(lit == 1 + int(np.argmax(sizes)))
    if disc.mean() > 0.97 or disc.mean() < 0.05:
        return None
    ys, xs = np.nonzero(disc)
    cy, cx = ys.mean(), xs.mean()
    angles = np.arctan2(ys - cy, xs - cx)
    distance = np.hypot(ys - cy, xs - cx)
    bins = np.digitize(angles, np.linspace(-np.pi, np.pi, 181))
    order = np.lexsort((distance, bins))
    last = np.r_[bins[order][1:] != bins[order][:-1], True]
    edge_y, edge_x = ys[order][last], xs[order][last]
    inner = (edge_y > 0) & (edge_y < disc.shape[0] - 1) & (edge_x > 0) & (edge_x < disc.shape[1] - 1)
    edge_x, edge_y = edge_x[inner].astype(float), edge_y[inner].astype(float)
    keep = np.ones(len(edge_x), bool)
    for _ in range(4):
        if keep.sum() < 20:
            return None
        circle = _fit_circle(edge_x[keep], edge_y[keep])
        residual = np.hypot(edge_x - circle[0], edge_y - circle[1]) - circle[2]
        spread = 1.4826 * np.median(np.abs(residual[keep])) + 0.5
        keep = residual > -2.5 * spread
    cx, cy, radius = _fit_circle(edge_x[keep], edge_y[keep])
    # pixel centres of the block-averaged frame are at factor * i + (factor - 1) / 2
    offset = (factor - 1) / 2
    return (float(cx * factor + offset), float(cy * factor + offset)), float((radius + 0.5) * factor)


def _fit_circle(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float, float]:
    """Least-squares circle through points (algebraic fit of Kasa)."""
    design = np.column_stack([xs, ys, np.ones_like(xs)])
    (a, b, c), *_ = np.linalg.lstsq(design, xs**2 + ys**2, rcond=None)
    cx, cy = a / 2, b / 2
    return float(cx), float(cy), float(np.sqrt(max(c + cx**2 + cy**2, 1.0)))


@lru_cache(maxsize=8)
def _elevation_map(path: str, flip: str) -> np.ndarray:
    from arcscan.geo.skymap import flipped
    from arcscan.io.calibration import read_elevation

    return flipped(read_elevation(path), flip)


@lru_cache(maxsize=8)
def _pixel_geometry(profile: ImagerProfile, base_dir: str, shape: tuple[int, int]) -> PixelGeometry | None:
    """The :class:`~arcscan.geo.skymap.PixelGeometry` of a profile, or None when it has none."""
    from arcscan.geo.coords import Site
    from arcscan.geo.skymap import fisheye_geometry, read_calibration, read_skymap

    def path(name: str) -> Path:
        return Path(name) if Path(name).is_absolute() else Path(base_dir) / name

    site = Site(*profile.location) if profile.location else None
    if profile.elevation is None:
        return fisheye_geometry(shape, profile.center, profile.horizon_radius, site, f"profile {profile.name}") if site else None
    if Path(profile.elevation).suffix.lower() == ".sav":
        return read_skymap(path(profile.elevation), profile.flip)
    if profile.azimuth is None or site is None:
        return None
    return read_calibration(path(profile.elevation), path(profile.azimuth), site, profile.flip)


class SkyFinder:
    """The sky of each frame from the imager profiles or the frame itself (see module doc);
    profile skies are computed once per profile and frame size."""

    def __init__(self, config: SkyConfig = SkyConfig()) -> None:
        self.config = config
        self._cache: dict[tuple[str, tuple[int, int]], Sky] = {}

    def profile(self, site: str, imager: str) -> ImagerProfile | None:
        return next((p for p in self.config.imagers if p.matches(site, imager)), None)

    def geometry(self, site: str, imager: str, shape: tuple[int, int]) -> PixelGeometry | None:
        """The pixel geometry (:class:`~arcscan.geo.skymap.PixelGeometry`) of frames of this
        site, imager and shape, or None without a profile that gives one (needs the ``geo``
        extra); InputError when it does not fit the frames' shape."""
        profile = self.profile(site, imager)
        if profile is None:
            return None
        geometry = _pixel_geometry(profile, self.config.base_dir, tuple(shape))
        if geometry is not None and geometry.shape != tuple(shape):
            raise InputError(f"imager profile {profile.name!r} describes {geometry.shape[1]}x{geometry.shape[0]} pixels, the frames have {shape[1]}x{shape[0]}")
        return geometry

    def arc_measure(self, site: str, imager: str, shape: tuple[int, int], when: datetime | None) -> Callable[[np.ndarray, np.ndarray], ArcGeo | None] | None:
        """What measures an arc region (its pixel rows and columns) of frames of this site,
        imager and shape, taken at ``when``, on the emission shell
        (:func:`arcscan.geo.arcs.arc_geo` at ``emission_altitude_km``), or None without a
        pixel geometry."""
        geometry = self.geometry(site, imager, shape)
        if geometry is None:
            return None
        from arcscan.geo.arcs import arc_geo

        return partial(
            arc_geo,
            ground=geometry.ground(self.config.emission_altitude_km),
            elevation=geometry.elevation,
            site=geometry.site,
            when=when,
            near_horizon_elevation=self.config.near_horizon_elevation,
        )

    def __call__(self, image: np.ndarray, site: str = "", imager: str = "", where: str = "input") -> Sky:
        shape = image.shape
        profile = self.profile(site, imager)
        if profile is None:
            found = estimate_disc(image)
            if found is None:
                return sky_from_disc(shape, ((shape[1] - 1) / 2, (shape[0] - 1) / 2), min(shape) / 2, self.config.min_elevation, "inscribed")
            return sky_from_disc(shape, found[0], found[1], self.config.min_elevation, "estimated")
        key = (profile.name, shape)
        if key not in self._cache:
            self._cache[key] = self._profile_sky(profile, shape, where)
        return self._cache[key]

    def _profile_sky(self, profile: ImagerProfile, shape: tuple[int, int], where: str) -> Sky:
        if profile.elevation is None:
            return sky_from_disc(shape, profile.center, profile.horizon_radius, self.config.min_elevation, f"profile {profile.name}")
        path = Path(profile.elevation)
        elevation = _elevation_map(str(path if path.is_absolute() else Path(self.config.base_dir) / path), profile.flip)
        if elevation.shape != shape:
            raise InputError(
                f"{where}: {shape[1]}x{shape[0]} pixels, but imager profile {profile.name!r} has a "
                f"{elevation.shape[1]}x{elevation.shape[0]} elevation map"
            )
        return sky_from_elevation(elevation, self.config.min_elevation, f"profile {profile.name}")


def rescale(image: np.ndarray, scale: float) -> np.ndarray:
    """A float image resampled by ``scale`` (bilinear; anti-aliased when shrinking)."""
    if scale == 1.0:
        return image
    shape = tuple(max(1, int(round(n * scale))) for n in image.shape)
    return resize(image, shape, order=1, mode="edge", anti_aliasing=scale < 1, preserve_range=True).astype(image.dtype)


def to_shape(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float map brought back to a frame's own ``shape`` (bilinear)."""
    if image.shape == tuple(shape):
        return image
    return resize(image, shape, order=1, mode="edge", anti_aliasing=False, preserve_range=True).astype(image.dtype)
