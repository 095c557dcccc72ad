"""Arcs in physical units: where an arc region of a mask lies on the emission shell, how long
and wide it is, and how it is turned against geographic and magnetic east-west.

All figures come from the arc's pixels mapped onto the shell (:class:`~arcscan.geo.skymap.Ground`)
and measured in the plane tangent to it above the site, each pixel weighted by the area of
the shell it covers (a pixel near the horizon covers a hundred times more than one overhead):

* centroid: the area-weighted mean position, as latitude/longitude and AACGM-v2 latitude,
  longitude and magnetic local time (at the frame's time);
* orientation: the major axis of the area-weighted covariance, degrees counter-clockwise
  from geographic east (towards north), in (-90, 90]; against magnetic east-west, the same
  minus the direction of the AACGM latitude contour through the centroid;
* length: the extent along the major axis (1st to 99th percentile of the area-weighted
  positions); mean width: area / length;
* poleward / equatorward boundary: the median over the arc's length (slices of one mean width
  along the major axis) of each slice's highest and lowest latitude, geographic and AACGM (at
  the centroid's longitude);
* elevation range of its pixels; ``near_horizon`` when it reaches below the near-horizon
  elevation, where the mapping onto one shell height distorts (a real arc is tens of km tall).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from arcscan.geo.coords import Site, east_north, from_east_north, magnetic, magnetic_local_time
from arcscan.geo.skymap import Ground

_CONTOUR_STEP_KM = 10.0  # finite difference for the direction of the magnetic latitude contour


@dataclass(frozen=True)
class ArcGeo:
    """The physical figures of one arc (degrees, km; magnetic ones None without a frame time)."""

    altitude_km: float
    centroid_lat: float
    centroid_lon: float
    centroid_mlat: float | None
    centroid_mlon: float | None
    centroid_mlt: float | None
    poleward_lat: float
    equatorward_lat: float
    poleward_mlat: float | None
    equatorward_mlat: float | None
    length_km: float
    mean_width_km: float
    area_km2: float
    orientation_geo_deg: float
    orientation_mag_deg: float | None
    min_elevation: float
    max_elevation: float
    near_horizon: bool


def arc_geo(rows: np.ndarray, cols: np.ndarray, ground: Ground, elevation: np.ndarray, site: Site, when: datetime | None, near_horizon_elevation: float) -> ArcGeo | None:
    """The figures of the arc made of pixels (``rows``, ``cols``), or None when none of them
    maps onto the shell."""
    east, north, area = ground.east[rows, cols], ground.north[rows, cols], ground.area[rows, cols]
    valid = np.isfinite(east) & np.isfinite(north) & np.isfinite(area) & (area > 0)
    if not valid.any():
        return None
    east, north, weight = east[valid], north[valid], area[valid]
    latitude = ground.latitude[rows, cols][valid]
    centre = np.array([np.average(east, weights=weight), np.average(north, weights=weight)])
    offsets = np.stack([east, north]) - centre[:, None]
    covariance = (offsets * weight) @ offsets.T / weight.sum()
    values, vectors = np.linalg.eigh(covariance)
    major = vectors[:, np.argmax(values)]
    orientation = _half_turn(np.degrees(np.arctan2(major[1], major[0])))
    along = major @ offsets
    low, high = _weighted_quantile(along, weight, [0.01, 0.99])
    area_km2 = float(weight.sum())
    length = float(high - low) if high > low else float(np.sqrt(area_km2))  # a blob: its side
    width = area_km2 / length
    poleward, equatorward = _boundaries(along, latitude, max(width, 1.0))
    (lat,), (lon,) = from_east_north(site, centre[:1], centre[1:], ground.altitude_km)
    pixel_elevation = elevation[rows, cols][valid]
    magnetic_figures = _magnetic(site, lat, lon, poleward, equatorward, orientation, ground.altitude_km, when)
    return ArcGeo(
        altitude_km=ground.altitude_km,
        centroid_lat=float(lat),
        centroid_lon=float(lon),
        **magnetic_figures,
        poleward_lat=poleward,
        equatorward_lat=equatorward,
        length_km=length,
        mean_width_km=width,
        area_km2=area_km2,
        orientation_geo_deg=orientation,
        min_elevation=float(np.nanmin(pixel_elevation)),
        max_elevation=float(np.nanmax(pixel_elevation)),
        near_horizon=bool(np.nanmin(pixel_elevation) < near_horizon_elevation),
    )


def _boundaries(along: np.ndarray, latitude: np.ndarray, width_km: float) -> tuple[float, float]:
    """Median over slices (``width_km`` long, along the major axis) of the highest and lowest latitude."""
    slices = np.floor((along - along.min()) / width_km).astype(int)
    order = np.argsort(slices)
    starts = np.r_[0, np.flatnonzero(np.diff(slices[order])) + 1]
    highest = np.maximum.reduceat(latitude[order], starts)
    lowest = np.minimum.reduceat(latitude[order], starts)
    return float(np.median(highest)), float(np.median(lowest))


def _magnetic(site: Site, lat: float, lon: float, poleward: float, equatorward: float, orientation: float, altitude_km: float, when: datetime | None) -> dict:
    """The AACGM-v2 figures of an arc (None without a time or where AACGM is undefined)."""
    names = ("centroid_mlat", "centroid_mlon", "centroid_mlt", "poleward_mlat", "equatorward_mlat", "orientation_mag_deg")
    if when is None:
        return dict.fromkeys(names)
    east, north = east_north(site, np.array([lat]), np.array([lon]), altitude_km)
    step = _CONTOUR_STEP_KM
    probe_lat, probe_lon = from_east_north(site, east[0] + np.array([0.0, step, 0.0]), north[0] + np.array([0.0, 0.0, step]), altitude_km)
    mlat, mlon = magnetic(np.r_[probe_lat, poleward, equatorward], np.r_[probe_lon, lon, lon], altitude_km, when)
    if not np.all(np.isfinite(mlat)):
        return dict.fromkeys(names)
    gradient_east, gradient_north = (mlat[1] - mlat[0]) / step, (mlat[2] - mlat[0]) / step
    magnetic_east = np.degrees(np.arctan2(-gradient_east, gradient_north))  # along the contour, eastward
    return {
        "centroid_mlat": float(mlat[0]),
        "centroid_mlon": float(mlon[0]),
        "centroid_mlt": float(magnetic_local_time(mlon[:1], when)[0]),
        "poleward_mlat": float(mlat[3]),
        "equatorward_mlat": float(mlat[4]),
        "orientation_mag_deg": _half_turn(orientation - magnetic_east),
    }


def _half_turn(degrees: float) -> float:
    """An axis direction in (-90, 90]."""
    value = (float(degrees) + 90.0) % 180.0 - 90.0
    return 90.0 if value == -90.0 else value


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, quantiles: list[float]) -> np.ndarray:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) - 0.5 * weights[order]
    return np.interp(np.multiply(quantiles, weights.sum()), cumulative, values[order])
