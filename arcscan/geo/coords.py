"""Coordinates: lines of sight to points on an emission shell, the tangent plane at the site,
and geographic to geomagnetic (AACGM-v2).

* :func:`shell_point`: the geodetic latitude and longitude where the line of sight at
  (azimuth, elevation) from the site pierces the shell ``altitude_km`` above the WGS84
  ellipsoid (pymap3d's ``aer2geodetic``; the slant range is solved for the geodetic height by
  Newton steps from the spherical-Earth range).
* :func:`east_north` / :func:`from_east_north`: km east and north of the site in the plane
  tangent to the shell above it (pymap3d ENU at the shell's height): the plane in which arc
  lengths, widths and orientations are measured.
* :func:`magnetic` / :func:`magnetic_local_time`: AACGM-v2 latitude and longitude (aacgmv2,
  coefficients of the frame's time) and magnetic local time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pymap3d

MEAN_EARTH_RADIUS_KM = 6371.0
_NEWTON_STEPS = 4  # the geodetic height of the shell point is then exact to well under a metre


@dataclass(frozen=True)
class Site:
    """Where an imager stands: geodetic latitude and longitude (degrees, east positive) and
    altitude (metres above the WGS84 ellipsoid)."""

    latitude: float
    longitude: float
    altitude_m: float = 0.0


def shell_point(site: Site, azimuth: np.ndarray, elevation: np.ndarray, altitude_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (degrees, longitude in [-180, 180)) of the shell ``altitude_km``
    up along each line of sight (azimuth east of north, elevation, degrees); NaN at or below
    the horizon."""
    azimuth, elevation = np.broadcast_arrays(np.asarray(azimuth, float), np.asarray(elevation, float))
    above = elevation > 0
    site_radius = MEAN_EARTH_RADIUS_KM + site.altitude_m / 1000
    shell_radius = MEAN_EARTH_RADIUS_KM + altitude_km
    sin_el = np.sin(np.radians(np.where(above, elevation, 90.0)))
    slant = -site_radius * sin_el + np.sqrt((site_radius * sin_el) ** 2 + shell_radius**2 - site_radius**2)  # km, sphere
    for _ in range(_NEWTON_STEPS):
        lat, lon, height = pymap3d.aer2geodetic(azimuth, elevation, slant * 1000, site.latitude, site.longitude, site.altitude_m)
        rate = (slant + site_radius * sin_el) / (MEAN_EARTH_RADIUS_KM + height / 1000)  # d height / d slant on the sphere
        slant = slant - (height / 1000 - altitude_km) / rate
    lat, lon, _ = pymap3d.aer2geodetic(azimuth, elevation, slant * 1000, site.latitude, site.longitude, site.altitude_m)
    lon = (np.asarray(lon) + 180.0) % 360.0 - 180.0
    return np.where(above, lat, np.nan), np.where(above, lon, np.nan)


def east_north(site: Site, latitude: np.ndarray, longitude: np.ndarray, altitude_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Km east and north of the point above the site, in the plane tangent to the shell
    ``altitude_km`` up there."""
    east, north, _ = pymap3d.geodetic2enu(latitude, longitude, altitude_km * 1000, site.latitude, site.longitude, altitude_km * 1000)
    return np.asarray(east) / 1000, np.asarray(north) / 1000


def from_east_north(site: Site, east_km: np.ndarray, north_km: np.ndarray, altitude_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (degrees) of the shell points whose :func:`east_north` are the
    given ones (the inverse: the tangent-plane point lowered onto the shell by its curvature,
    then corrected until it projects back)."""
    east_km, north_km = np.asarray(east_km, float), np.asarray(north_km, float)
    target_east, target_north = east_km, north_km
    for _ in range(3):
        sag = -(east_km**2 + north_km**2) / (2 * (MEAN_EARTH_RADIUS_KM + altitude_km))
        lat, lon, _ = pymap3d.enu2geodetic(east_km * 1000, north_km * 1000, sag * 1000, site.latitude, site.longitude, altitude_km * 1000)
        lon = (np.asarray(lon) + 180.0) % 360.0 - 180.0
        back_east, back_north = east_north(site, lat, lon, altitude_km)
        east_km, north_km = east_km + (target_east - back_east), north_km + (target_north - back_north)
    return np.asarray(lat), lon


AACGM_YEARS = (1990, 2030)  # the years aacgmv2 2.7's coefficients cover (IGRF-14 with its secular variation)


def magnetic(latitude: np.ndarray, longitude: np.ndarray, altitude_km: float, when: datetime) -> tuple[np.ndarray, np.ndarray]:
    """AACGM-v2 magnetic latitude and longitude (degrees) of geographic points at
    ``altitude_km``, with the coefficients of ``when``; NaN where AACGM is undefined."""
    import aacgmv2  # the geo extra; the rest of this module needs only pymap3d (a core dependency: the synthetic imager uses it)

    latitude, longitude = np.broadcast_arrays(np.atleast_1d(np.asarray(latitude, float)), np.atleast_1d(np.asarray(longitude, float)))
    if not aacgm_defined(when):
        return np.full(latitude.shape, np.nan), np.full(latitude.shape, np.nan)
    mlat, mlon, _ = aacgmv2.convert_latlon_arr(latitude.ravel(), longitude.ravel(), altitude_km, _naive_utc(when), method_code="G2A")
    return np.asarray(mlat).reshape(latitude.shape), np.asarray(mlon).reshape(latitude.shape)


def magnetic_local_time(magnetic_longitude: np.ndarray, when: datetime) -> np.ndarray:
    """Magnetic local time (hours) of AACGM-v2 longitudes at ``when``; NaN where undefined."""
    import aacgmv2

    values = np.atleast_1d(np.asarray(magnetic_longitude, float))
    if not aacgm_defined(when):
        return np.full(values.shape, np.nan)
    return np.asarray(aacgmv2.convert_mlt(values.ravel(), _naive_utc(when), m2a=False)).reshape(values.shape)


def aacgm_defined(when: datetime) -> bool:
    """Whether AACGM-v2 has coefficients for ``when`` (outside them aacgmv2 raises or answers -1)."""
    return AACGM_YEARS[0] <= _naive_utc(when).year < AACGM_YEARS[1]


def _naive_utc(when: datetime) -> datetime:
    """aacgmv2 takes naive UTC datetimes (a naive ``when`` is taken as UTC)."""
    return when if when.tzinfo is None else when.astimezone(timezone.utc).replace(tzinfo=None)
