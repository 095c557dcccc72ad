"""Pixel geometry of an imager: where each pixel of its frames looks, and where that line of
sight meets an emission shell.

A :class:`PixelGeometry` holds per-pixel elevation and azimuth (degrees; NaN without a line
of sight), the site, and any latitude/longitude the calibration itself precomputed. It comes
from one of three sources:

* a **THEMIS skymap** (``themis_skymap_<site>_<from>-<to|+>_<version>.sav``), read with
  pyucalgarysrs' ``read_skymap``. That reader flips every array north-south (to match its own
  flipped stream0 frames) and gives the altitudes in metres: the flip is undone here, so the
  arrays are as stored, and the precomputed pixel-corner latitudes/longitudes at 90, 110 and
  150 km are kept by altitude in km;
* **azimuth and elevation calibration images** (Poker Flat DASC's ``_Az.FIT`` / ``_El.FIT``)
  with the site's location given by the imager profile;
* an **ideal equidistant fisheye** (a disc profile with a location, and the synthetic
  imager): zenith angle proportional to the distance from the centre, seen as a map (north up,
  east right).

``flip`` (``none``, ``rows``, ``columns``, ``both``) turns the stored arrays into the
orientation of the frames they describe. For THEMIS level-1 CDF frames as arcscan reads them
it is ``both``: the stars of the GAKO frames sit on their catalogue positions only so
(``tests/test_geo_skymap.py``).

:meth:`PixelGeometry.ground` gives, at an emission altitude, each pixel centre's latitude and
longitude (the skymap's own values at its precomputed altitudes, the mean of the four corners;
else :func:`arcscan.geo.coords.shell_point` from azimuth and elevation), its position in the
tangent plane above the site (km east, north) and the ground area it covers (km²).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arcscan.errors import ArcscanError, InputError
from arcscan.geo.coords import Site, east_north, shell_point

FLIPS = {"none": (), "rows": (0,), "columns": (1,), "both": (0, 1)}


@dataclass(frozen=True)
class Ground:
    """Per-pixel positions on the shell ``altitude_km`` up (arrays of the frame's shape)."""

    altitude_km: float
    latitude: np.ndarray = field(repr=False)
    longitude: np.ndarray = field(repr=False)  # degrees, [-180, 180)
    east: np.ndarray = field(repr=False)  # km east of the point above the site (tangent plane)
    north: np.ndarray = field(repr=False)  # km north of it
    area: np.ndarray = field(repr=False)  # km² of the shell a pixel covers (NaN where undefined)


@dataclass(frozen=True, eq=False)
class PixelGeometry:
    """Where each pixel looks (elevation, azimuth east of north; degrees, NaN without a line
    of sight), from ``site``; ``corners``: precomputed pixel-corner (H+1, W+1) latitude and
    longitude by altitude in km (a skymap's)."""

    elevation: np.ndarray = field(repr=False)
    azimuth: np.ndarray = field(repr=False)
    site: Site
    source: str
    corners: dict[float, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    _ground: dict[float, Ground] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.elevation.shape != self.azimuth.shape or self.elevation.ndim != 2:
            raise InputError(f"{self.source}: elevation {self.elevation.shape} and azimuth {self.azimuth.shape} must be one image each, of one shape")

    @property
    def shape(self) -> tuple[int, int]:
        return self.elevation.shape

    @property
    def zenith(self) -> tuple[int, int]:
        """(row, column) of the pixel that looks highest."""
        return tuple(int(i) for i in np.unravel_index(np.nanargmax(self.elevation), self.shape))

    def ground(self, altitude_km: float = 110.0) -> Ground:
        """Each pixel on the shell ``altitude_km`` up (computed once per altitude)."""
        if altitude_km not in self._ground:
            if altitude_km in self.corners:
                lat, lon = (0.25 * (c[:-1, :-1] + c[1:, :-1] + c[:-1, 1:] + c[1:, 1:]) for c in self.corners[altitude_km])
                lon = (lon + 180.0) % 360.0 - 180.0
            else:
                lat, lon = shell_point(self.site, self.azimuth, self.elevation, altitude_km)
            east, north = east_north(self.site, lat, lon, altitude_km)
            self._ground[altitude_km] = Ground(altitude_km, lat, lon, east, north, _pixel_area(east, north))
        return self._ground[altitude_km]


def _pixel_area(east: np.ndarray, north: np.ndarray) -> np.ndarray:
    """Km² per pixel: the Jacobian of (east, north) over (row, column)."""
    with np.errstate(invalid="ignore"):
        d_east_row, d_east_col = np.gradient(east)
        d_north_row, d_north_col = np.gradient(north)
        return np.abs(d_east_col * d_north_row - d_east_row * d_north_col)


def flipped(array: np.ndarray, flip: str) -> np.ndarray:
    """``array`` flipped along the last two axes as ``flip`` says (see module doc)."""
    if flip not in FLIPS:
        raise InputError(f"flip {flip!r}: expected one of {', '.join(FLIPS)}")
    axes = tuple(array.ndim - 2 + axis for axis in FLIPS[flip])
    return np.ascontiguousarray(np.flip(array, axes) if axes else array)


def read_skymap(path: str | Path, flip: str = "none") -> PixelGeometry:
    """The geometry of a THEMIS skymap (``.sav``), read with pyucalgarysrs (its north-south
    flip undone, altitudes to km), then flipped as ``flip`` says."""
    try:
        from pyucalgarysrs import PyUCalgarySRS
        from pyucalgarysrs.exceptions import SRSError
    except ImportError as err:
        raise ArcscanError(f"{Path(path).name}: reading THEMIS skymaps needs the geo extra (pip install 'arcscan[geo]')") from err

    path = Path(path)
    if not path.is_file():
        raise InputError(f"skymap {path} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy cannot verify some record sizes of THEMIS skymaps
            (skymap,) = PyUCalgarySRS().data.readers.read_skymap(path, quiet=True).data
    except SRSError as err:
        raise InputError(f"{path.name}: not an IDL save file ({err})") from err
    except (IndexError, ValueError, KeyError, AttributeError) as err:  # the reader parses the file name and the record
        raise InputError(f"{path.name}: not a THEMIS skymap (themis_skymap_<site>_<from>-<to|+>_<version>.sav): {err}") from err

    def as_frames(array: np.ndarray) -> np.ndarray:  # pyucalgarysrs flipped the rows: flip them back, then as the frames are
        return flipped(flipped(np.asarray(array, np.float64), "rows"), flip)

    elevation, azimuth = as_frames(skymap.full_elevation), as_frames(skymap.full_azimuth)
    corners = {
        float(metres) / 1000: (as_frames(skymap.full_map_latitude[i]), as_frames(skymap.full_map_longitude[i]))
        for i, metres in enumerate(np.atleast_1d(skymap.full_map_altitude))
    }
    site = Site(float(skymap.site_map_latitude), (float(skymap.site_map_longitude) + 180.0) % 360.0 - 180.0, float(skymap.site_map_altitude))
    return PixelGeometry(_valid_angles(elevation), azimuth, site, path.name, corners)


def read_calibration(elevation_path: str | Path, azimuth_path: str | Path, site: Site, flip: str = "none") -> PixelGeometry:
    """The geometry of per-pixel elevation and azimuth calibration images (FITS, degrees),
    flipped as ``flip`` says; pixels without a line of sight (elevation 0 and azimuth 0, as
    DASC marks them, or out of range) are NaN."""
    from arcscan.io.calibration import read_calibration_image

    elevation = flipped(read_calibration_image(elevation_path), flip)
    azimuth = flipped(read_calibration_image(azimuth_path), flip)
    if elevation.shape != azimuth.shape:
        raise InputError(f"{Path(azimuth_path).name}: {azimuth.shape} pixels, but {Path(elevation_path).name} has {elevation.shape}")
    unseen = (elevation == 0) & (azimuth == 0)
    elevation, azimuth = _valid_angles(np.where(unseen, np.nan, elevation)), np.where(unseen, np.nan, azimuth)
    return PixelGeometry(elevation, azimuth, site, Path(elevation_path).name)


def fisheye_angles(shape: tuple[int, int], center: tuple[float, float], horizon_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation (degrees) of an ideal equidistant fisheye seen as a map (north up,
    east right): elevation 90 at ``center`` (x, y), 0 at ``horizon_radius``, negative beyond."""
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(float)
    right, up = cols - center[0], center[1] - rows
    azimuth = np.degrees(np.arctan2(right, up)) % 360.0
    elevation = 90.0 * (1.0 - np.hypot(right, up) / horizon_radius)
    return azimuth, elevation


def fisheye_geometry(shape: tuple[int, int], center: tuple[float, float], horizon_radius: float, site: Site, source: str = "fisheye") -> PixelGeometry:
    """The geometry of an ideal equidistant fisheye (:func:`fisheye_angles`); no line of sight
    below the horizon."""
    azimuth, elevation = fisheye_angles(shape, center, horizon_radius)
    below = elevation < 0
    return PixelGeometry(np.where(below, np.nan, elevation), np.where(below, np.nan, azimuth), site, source)


def _valid_angles(elevation: np.ndarray) -> np.ndarray:
    elevation = np.array(elevation, dtype=np.float32)
    elevation[(elevation < -90) | (elevation > 90)] = np.nan
    return elevation
