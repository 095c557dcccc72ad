"""Keograms: the meridian samples of a known geometry, and ``arcscan keogram`` on a synthetic
night and on the real GAKO minute (PNG, netCDF data, catalog, boundary plot)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from arcscan.core.synth import SYNTHETIC_SITE, write_minute
from arcscan.geo.catalog import read_catalog
from arcscan.geo.keogram import meridian_pixels
from arcscan.geo.skymap import fisheye_geometry

from conftest import write_all_arc_workspace

ROOT = Path(__file__).resolve().parents[1]
GAKO_L1 = ROOT / "data" / "real" / "valid" / "thg_l1_asf_gako_2011010617_v01.cdf"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """params.yaml with absolute calibration paths and a coarse scan, the all-arc model (a
    ResNet18 whose last layer calls every patch an arc) and a synthetic night."""
    folder = tmp_path_factory.mktemp("keogram")
    write_all_arc_workspace(folder)
    for minute in range(3):
        write_minute(folder / "night", 40 + minute, datetime(2026, 1, 1, 6, minute, tzinfo=timezone.utc), n_frames=2)
    return folder


def keogram_cli(workspace: Path, files: list[Path], out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "arcscan", "--params", str(workspace / "params.yaml"), "keogram", *map(str, files), "--checkpoint", str(workspace / "all-arc.pt"), "-o", str(out)],
        capture_output=True, text=True, timeout=1200,
    )


def test_the_meridian_of_a_map_view_fisheye_is_its_central_column():
    geometry = fisheye_geometry((256, 256), (127.5, 127.5), 126.0, SYNTHETIC_SITE)
    rows, cols, zenith = meridian_pixels(geometry, min_elevation=10.0)
    assert set(cols) <= {127, 128}
    assert np.all(np.diff(rows) <= 0)  # south (bottom) to north (top)
    assert zenith[0] == pytest.approx(-80.0, abs=1.0) and zenith[-1] == pytest.approx(80.0, abs=1.0)
    latitude = geometry.ground(110.0).latitude[rows, cols]
    assert np.all(np.diff(latitude) > 0)


def check_outputs(out: Path, stem: str, frames: int) -> xr.Dataset:
    for suffix in ("_keogram.png", "_boundaries.png"):
        assert (out / f"{stem}{suffix}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with xr.open_dataset(out / f"{stem}_keogram.nc", engine="scipy") as data:
        data = data.load()
    assert data["intensity"].shape[0] == frames and data["arc"].shape == data["intensity"].shape
    assert np.all(np.diff(data["latitude"].values) > 0) and np.isfinite(data["mlat"].values).all()
    assert np.all(np.diff(data["time"].values) >= np.timedelta64(0, "ms"))
    catalog = read_catalog(out / f"{stem}_catalog.parquet").to_pylist()
    assert read_catalog(out / f"{stem}_catalog.csv").to_pylist() == catalog
    assert {row["frame"] for row in catalog} and all(row["centroid_lat"] is not None for row in catalog)
    return data


def test_keogram_of_a_synthetic_night(workspace, tmp_path):
    run = keogram_cli(workspace, sorted((workspace / "night").glob("*.pgm.gz")), tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    data = check_outputs(tmp_path, "20260101_synt_themis99", frames=6)
    assert data["arc"].values.mean() > 0.9  # the all-arc model: the whole meridian is arc
    assert data.attrs["site"] == "synt" and data["latitude"].values.min() < SYNTHETIC_SITE.latitude < data["latitude"].values.max()


@pytest.mark.slow
def test_keogram_of_the_real_gako_minute(workspace, tmp_path):
    if not GAKO_L1.is_file():
        pytest.skip(f"{GAKO_L1} not present (make data)")
    run = keogram_cli(workspace, [GAKO_L1], tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    data = check_outputs(tmp_path, "20110106_gako", frames=23)
    assert data["latitude"].values.min() < 62.41 < data["latitude"].values.max()
    assert data.attrs["geometry"].startswith("themis_skymap_gako")


def test_frames_without_a_geometry_are_a_clear_error(workspace, tmp_path):
    frames, _ = write_minute(tmp_path / "other", 1, datetime(2026, 1, 1, 6, tzinfo=timezone.utc), n_frames=1, site="abcd")
    run = keogram_cli(workspace, [frames], tmp_path / "out")
    assert run.returncode == 2 and "no imager profile with a pixel geometry" in run.stderr
