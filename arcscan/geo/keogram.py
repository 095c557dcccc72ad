"""Keograms: the north-south line of sight through the zenith, frame after frame, with the arc
mask on it, against geographic and magnetic latitude; and the arcs' boundary latitudes
against time.

The line is sampled every ``step`` degrees of zenith angle along the geographic meridian,
from the southern to the northern sky at ``min_elevation``; each sample takes the pixel whose
line of sight is nearest (none farther than ``max_miss`` degrees), each pixel once. Its latitude at the
emission altitude is the geometry's; its AACGM-v2 latitude is computed at the first frame's
time (the coefficients change over years, not within a night). The data is an
:class:`xarray.Dataset` (``intensity`` and ``arc`` over ``time`` x ``sample``), written as
netCDF (netCDF3 through scipy: no HDF5 library needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from arcscan.core.segment import Segmentation  # noqa: E402
from arcscan.errors import InputError  # noqa: E402
from arcscan.geo.coords import magnetic  # noqa: E402
from arcscan.geo.skymap import PixelGeometry  # noqa: E402
from arcscan.io.frames import Frame  # noqa: E402


def meridian_pixels(geometry: PixelGeometry, min_elevation: float = 10.0, step: float = 0.5, max_miss: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and signed zenith angles (degrees, north positive) of the meridian samples."""
    seen = np.isfinite(geometry.elevation) & np.isfinite(geometry.azimuth) & (np.nan_to_num(geometry.elevation, nan=-90) >= min_elevation)
    rows, cols = np.nonzero(seen)
    tree = cKDTree(_unit(geometry.azimuth[rows, cols], geometry.elevation[rows, cols]))
    zenith = np.arange(-(90 - min_elevation), 90 - min_elevation + step / 2, step)
    distance, nearest = tree.query(_unit(np.where(zenith >= 0, 0.0, 180.0), 90 - np.abs(zenith)))
    keep = distance <= 2 * np.sin(np.radians(max_miss) / 2)  # chord of max_miss degrees
    rows, cols, zenith = rows[nearest[keep]], cols[nearest[keep]], zenith[keep]
    northward = np.cos(np.radians(geometry.azimuth[rows, cols])) >= 0
    pixel_zenith = np.where(northward, 1, -1) * (90 - geometry.elevation[rows, cols])
    keep = np.r_[True, pixel_zenith[1:] > np.maximum.accumulate(pixel_zenith)[:-1]]  # each pixel once, south to north
    if keep.sum() < 10:
        raise InputError(f"{geometry.source}: fewer than 10 pixels look along the meridian")
    return rows[keep], cols[keep], zenith[keep]


def keogram(frames: Sequence[Frame], results: Sequence[Segmentation], geometry: PixelGeometry, altitude_km: float = 110.0, min_elevation: float = 10.0) -> xr.Dataset:
    """The keogram of one imager's frames and their segmentations (time order), as a dataset."""
    if not frames or len(frames) != len(results):
        raise InputError("a keogram needs frames, each with its segmentation")
    if any(frame.timestamp is None for frame in frames):
        raise InputError(f"{frames[0].source}: frames without a timestamp cannot make a keogram")
    order = np.argsort([frame.timestamp.timestamp() for frame in frames], kind="stable")
    rows, cols, zenith = meridian_pixels(geometry, min_elevation)
    ground = geometry.ground(altitude_km)
    latitude, longitude = ground.latitude[rows, cols], ground.longitude[rows, cols]
    mlat, _ = magnetic(latitude, longitude, altitude_km, frames[order[0]].timestamp)
    times = np.array([frames[i].timestamp.replace(tzinfo=None) for i in order], dtype="datetime64[ms]")
    return xr.Dataset(
        {
            "intensity": (("time", "sample"), np.stack([results[i].image01[rows, cols] for i in order]).astype(np.float32), {"long_name": "normalised intensity (0-1)"}),
            "arc": (("time", "sample"), np.stack([results[i].mask[rows, cols] for i in order]).astype(np.int8), {"long_name": "arc mask (1 = arc)"}),
        },
        coords={
            "time": ("time", times, {"long_name": "exposure start, UTC"}),
            "zenith_angle": ("sample", zenith, {"units": "degree", "long_name": "zenith angle along the meridian, north positive"}),
            "latitude": ("sample", latitude, {"units": "degree_north", "long_name": f"geographic latitude at {altitude_km:g} km"}),
            "longitude": ("sample", longitude, {"units": "degree_east", "long_name": f"geographic longitude at {altitude_km:g} km"}),
            "mlat": ("sample", mlat, {"units": "degree", "long_name": f"AACGM-v2 latitude at {altitude_km:g} km"}),
            "row": ("sample", rows), "column": ("sample", cols),
        },
        attrs={
            "site": frames[0].site, "imager": frames[0].imager, "altitude_km": altitude_km,
            "geometry": geometry.source, "title": f"arcscan keogram {frames[0].site} {frames[0].imager}".strip(),
        },
    )


def write_netcdf(data: xr.Dataset, path: str | Path) -> Path:
    """The keogram as netCDF (3, 64-bit offsets; readable by xarray, netCDF4, ncdump)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data.to_netcdf(path, engine="scipy")
    return path


def plot_keogram(data: xr.Dataset, path: str | Path) -> Path:
    """The keogram as a PNG: intensity in grey, the arc mask in red, geographic latitude on
    the left axis and AACGM latitude on the right."""
    times = data["time"].values
    edges = _time_edges(times)
    latitude = data["latitude"].values
    fig, axis = plt.subplots(figsize=(9, 4.5), constrained_layout=True)
    axis.pcolormesh(edges, _edges(latitude), data["intensity"].values.T, cmap="gray", vmin=0, vmax=1, shading="flat")
    arc = np.ma.masked_equal(data["arc"].values.T, 0)
    axis.pcolormesh(edges, _edges(latitude), arc, cmap="autumn", alpha=0.45, shading="flat")
    axis.set_ylabel(f"geographic latitude at {data.attrs['altitude_km']:g} km (°N)")
    _time_axis(axis)
    mlat = data["mlat"].values
    order = np.argsort(latitude)
    magnetic_axis = axis.secondary_yaxis("right", functions=(lambda y: np.interp(y, latitude[order], mlat[order]), lambda m: np.interp(m, mlat[order], latitude[order])))
    magnetic_axis.set_ylabel("AACGM-v2 latitude (°)")
    axis.set_title(f"{data.attrs['title']}  {str(times[0])[:10]}  (red: arcs)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_boundaries(rows: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Poleward and equatorward boundary latitudes of every catalogued arc against time
    (near-horizon arcs hollow)."""
    fig, axis = plt.subplots(figsize=(9, 4), constrained_layout=True)
    measured = [row for row in rows if row.get("poleward_lat") is not None and row.get("timestamp")]
    for key, colour, name in (("poleward_lat", "tab:blue", "poleward"), ("equatorward_lat", "tab:orange", "equatorward")):
        for near in (False, True):
            chosen = [row for row in measured if bool(row.get("near_horizon")) == near]
            if chosen:
                axis.scatter(
                    [np.datetime64(row["timestamp"][:23], "ms") for row in chosen], [row[key] for row in chosen], s=14,
                    facecolors="none" if near else colour, edgecolors=colour, label=f"{name} boundary" + (" (near horizon)" if near else ""),
                )
    axis.set_ylabel("geographic latitude (°N)")
    _time_axis(axis)
    axis.set_title(title or "arc boundary latitudes")
    if measured:
        axis.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _time_axis(axis: plt.Axes) -> None:
    locator = mdates.AutoDateLocator()
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axis.set_xlabel("UTC")


def _unit(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    az, el = np.radians(azimuth), np.radians(elevation)
    return np.stack([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)], axis=-1)


def _edges(centres: np.ndarray) -> np.ndarray:
    inner = (centres[1:] + centres[:-1]) / 2
    return np.r_[2 * centres[0] - inner[0], inner, 2 * centres[-1] - inner[-1]]


def _time_edges(times: np.ndarray) -> np.ndarray:
    seconds = (times - times[0]) / np.timedelta64(1, "ms") / 1000.0
    if len(seconds) == 1:
        seconds = np.array([0.0])
        edges = np.array([-1.5, 1.5])
    else:
        edges = _edges(seconds)
    return times[0] + (edges * 1000).astype("timedelta64[ms]")
