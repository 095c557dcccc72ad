"""Coordinate conversions: lines of sight to the emission shell, the tangent plane, AACGM-v2."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pymap3d
import pytest

from arcscan.geo.coords import MEAN_EARTH_RADIUS_KM, Site, east_north, from_east_north, magnetic, magnetic_local_time, shell_point

GAKO = Site(62.41, -145.16, 0.0)
PKR = Site(65.126, -147.479, 500.0)
WHEN = datetime(2011, 1, 6, 17, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("site", [GAKO, PKR])
@pytest.mark.parametrize("altitude", [90.0, 110.0, 230.0])
def test_shell_points_lie_on_the_shell_along_their_line_of_sight(site, altitude):
    azimuth, elevation = np.meshgrid(np.arange(0, 360, 15.0), [5.0, 10.0, 30.0, 60.0, 89.0])
    lat, lon = shell_point(site, azimuth, elevation, altitude)
    back_az, back_el, slant = pymap3d.geodetic2aer(lat, lon, altitude * 1000, site.latitude, site.longitude, site.altitude_m)
    assert np.allclose((back_az - azimuth + 180) % 360 - 180, 0, atol=1e-6)
    assert np.allclose(back_el, elevation, atol=1e-6)
    _, _, height = pymap3d.aer2geodetic(azimuth, elevation, slant, site.latitude, site.longitude, site.altitude_m)
    assert np.allclose(height, altitude * 1000, atol=1.0)  # metres


def test_the_shell_distance_follows_the_spherical_earth_within_its_flattening():
    """Ground distance to the shell point against the spherical-Earth formula."""
    elevation = np.array([10.0, 20.0, 45.0, 80.0])
    lat, lon = shell_point(GAKO, np.zeros(4), elevation, 110.0)
    east, north = east_north(GAKO, lat, lon, 110.0)
    zenith = np.radians(90 - elevation)
    central = zenith - np.arcsin(MEAN_EARTH_RADIUS_KM / (MEAN_EARTH_RADIUS_KM + 110) * np.sin(zenith))
    spherical = (MEAN_EARTH_RADIUS_KM + 110) * np.sin(central)  # tangent-plane north of the point
    assert np.allclose(east, 0, atol=1e-6)
    assert np.allclose(north, spherical, rtol=0.01)


def test_below_the_horizon_there_is_no_shell_point():
    lat, lon = shell_point(GAKO, np.array([0.0, 90.0]), np.array([0.0, -5.0]), 110.0)
    assert np.isnan(lat).all() and np.isnan(lon).all()


def test_the_tangent_plane_round_trips():
    east, north = np.array([-300.0, 0.0, 120.5]), np.array([50.0, 0.0, -410.0])
    lat, lon = from_east_north(GAKO, east, north, 110.0)
    assert (lon >= -180).all() and (lon < 180).all()
    back_east, back_north = east_north(GAKO, lat, lon, 110.0)
    assert np.allclose(back_east, east, atol=1e-6) and np.allclose(back_north, north, atol=1e-6)


def test_aacgm_round_trips_and_its_latitude_grows_poleward():
    import aacgmv2

    lat, lon = np.array([60.0, 62.41, 65.0, 70.0]), np.full(4, -145.16)
    mlat, mlon = magnetic(lat, lon, 110.0, WHEN)
    assert np.all(np.diff(mlat) > 0) and np.all(np.abs(mlat - lat) < 5)
    back_lat, back_lon, _ = aacgmv2.convert_latlon_arr(mlat, mlon, 110.0, WHEN.replace(tzinfo=None), method_code="A2G")
    assert np.allclose(back_lat, lat, atol=0.05) and np.allclose((back_lon - lon + 180) % 360 - 180, 0, atol=0.05)  # the fit of AACGM-v2
    assert np.array_equal(magnetic(lat, lon, 110.0, WHEN.replace(tzinfo=None))[0], mlat, equal_nan=True)  # naive = UTC


def test_magnetic_local_time_turns_an_hour_per_15_degrees():
    mlt = magnetic_local_time(np.array([0.0, 15.0, 30.0]), WHEN)
    assert np.allclose(np.diff(mlt), 1.0)
    assert ((0 <= mlt) & (mlt < 24)).all()


def test_magnetic_coordinates_are_nan_outside_the_aacgm_years():
    # a frame dated outside the coefficients (the synthetic benchmark frames are 2030) must not
    # stop a segmentation: its magnetic figures are undefined, the rest is measured
    for when in (datetime(1985, 1, 1), datetime(2030, 1, 1, 6, tzinfo=timezone.utc)):
        mlat, mlon = magnetic([65.0, 66.0], [-147.0, -147.0], 110.0, when)
        assert mlat.shape == (2,) and np.isnan(mlat).all() and np.isnan(mlon).all()
        assert np.isnan(magnetic_local_time([10.0], when)).all()
    assert np.isfinite(magnetic([65.0], [-147.0], 110.0, datetime(2029, 12, 31))[0]).all()
