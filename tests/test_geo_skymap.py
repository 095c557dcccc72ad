"""Pixel geometry on the real calibrations of the project's data (data/real/cal, DVC): the GAKO
THEMIS skymap (pyucalgarysrs' reader, its flip, its precomputed 110 km map against the one
computed here from azimuth and elevation), the orientation of our frames (stars of the GAKO
level-1 frames, stream0 against pyucalgarysrs' own reader) and the Poker Flat DASC
azimuth/elevation files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from scipy.io import readsav

from arcscan.config import load_settings
from arcscan.errors import InputError
from arcscan.geo.coords import east_north, shell_point
from arcscan.geo.skymap import flipped, read_skymap
from arcscan.io.frames import read_frames

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data" / "real"
SKYMAP = REAL / "cal" / "themis_skymap_gako_20110305-+_vXX.sav"
GAKO_L1 = REAL / "valid" / "thg_l1_asf_gako_2011010617_v01.cdf"
DASC_FRAME = REAL / "valid" / "PKR_DASC_0558_20151007_082351.743.FITS"
GILL_STREAM0 = REAL / "train" / "20140310_0600_gill_themis19_full.pgm.gz"
WORST_110_KM_DIFFERENCE = 0.5  # km above 10 degrees elevation; measured 0.38 km (README)

# J2000 right ascension and declination (degrees) of the brightest stars of the northern sky
BRIGHT_STARS = {
    "Vega": (279.23, 38.78), "Capella": (79.17, 46.00), "Arcturus": (213.92, 19.18), "Deneb": (310.36, 45.28),
    "Altair": (297.70, 8.87), "Dubhe": (165.93, 61.75), "Merak": (165.46, 56.38), "Alioth": (193.51, 55.96),
    "Mizar": (200.98, 54.93), "Alkaid": (206.89, 49.31), "Polaris": (37.95, 89.26), "Kochab": (222.68, 74.16),
    "Mirfak": (51.08, 49.86), "Schedar": (10.13, 56.54), "Caph": (2.29, 59.15), "Eltanin": (269.15, 51.49),
    "Alphecca": (233.67, 26.71), "Rasalhague": (263.73, 12.56), "Castor": (113.65, 31.89), "Pollux": (116.33, 28.03),
    "Regulus": (152.09, 11.97), "Sadr": (305.56, 40.26), "Almach": (30.97, 42.33), "Mirach": (17.43, 35.62),
}


@pytest.fixture(scope="module")
def settings():
    if not SKYMAP.is_file():
        pytest.skip(f"{SKYMAP} not present (make data: dvc pull)")
    return load_settings(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def gako(settings):
    frames = read_frames(GAKO_L1)
    return frames, settings.sky_finder().geometry(frames[0].site, frames[0].imager, frames[0].image.shape)


def stored_skymap() -> np.recarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return readsav(str(SKYMAP))["skymap"][0]


def test_read_skymap_undoes_the_readers_north_south_flip_and_its_metres(settings):
    stored = stored_skymap()
    geometry = read_skymap(SKYMAP)
    assert np.array_equal(geometry.elevation, stored["FULL_ELEVATION"], equal_nan=True)
    assert np.array_equal(geometry.azimuth, stored["FULL_AZIMUTH"], equal_nan=True)
    assert sorted(geometry.corners) == [90.0, 110.0, 150.0]  # km, from the reader's metres
    assert np.array_equal(geometry.corners[110.0][0], stored["FULL_MAP_LATITUDE"][1], equal_nan=True)
    assert geometry.site.latitude == pytest.approx(62.41, abs=1e-4) and geometry.site.longitude == pytest.approx(214.84 - 360, abs=1e-4)


def test_our_stream0_frames_are_pyucalgarysrs_frames_flipped_back():
    """pyucalgarysrs flips stream0 frames and skymaps north-south alike; our reader and our
    skymap reader keep the file's order, so a stream0 pixel (row, col) meets skymap (row, col)
    as it does in pyucalgarysrs."""
    from pyucalgarysrs import PyUCalgarySRS

    if not GILL_STREAM0.is_file():
        pytest.skip(f"{GILL_STREAM0} not present (make data)")
    theirs = PyUCalgarySRS().data.readers.read_themis(GILL_STREAM0, quiet=True).data
    ours = read_frames(GILL_STREAM0)
    assert theirs.shape[2] == len(ours)
    assert all(np.array_equal(frame.image, np.flip(theirs[:, :, i], 0)) for i, frame in enumerate(ours))


def star_directions(frame_time, site) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation (degrees) of the bright stars, Saturn and Venus at the site."""
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False  # offline: the bundled IERS tables
    when = Time(frame_time.replace(tzinfo=None), scale="utc")
    frame = AltAz(obstime=when, location=EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=site.altitude_m * u.m))
    ra, dec = np.array(list(BRIGHT_STARS.values())).T
    stars = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame)
    planets = [get_body(name, when).transform_to(frame) for name in ("saturn", "venus")]
    return np.r_[stars.az.deg, [p.az.deg for p in planets]], np.r_[stars.alt.deg, [p.alt.deg for p in planets]]


def point_sources(image: np.ndarray, elevation: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the ``count`` brightest point sources above 8 degrees."""
    residual = image.astype(float) - ndimage.median_filter(image.astype(float), 7)
    sky = np.nan_to_num(elevation, nan=-90) > 8
    noise = 1.4826 * np.median(np.abs(residual[sky]))
    peaks = (residual == ndimage.maximum_filter(residual, 5)) & sky & (residual > 10 * noise)
    rows, cols = np.nonzero(peaks)
    brightest = np.argsort(-residual[rows, cols])[:count]
    return rows[brightest], cols[brightest]


def separation(az1, el1, az2, el2) -> np.ndarray:
    az1, el1, az2, el2 = map(np.radians, (az1, el1, az2, el2))
    return np.degrees(np.arccos(np.clip(np.sin(el1) * np.sin(el2) + np.cos(el1) * np.cos(el2) * np.cos(az1 - az2), -1, 1)))


def test_the_stars_of_the_gako_frames_sit_on_the_profiles_geometry_and_only_there(gako):
    """Level-1 CDF frames meet the skymap turned by 180 degrees (profile flip: both): most of
    the ten brightest point sources of a GAKO frame then lie within 1.5 degrees of bright
    stars; in the skymap's own order (or flipped one way only) none does."""
    frames, geometry = gako
    rows, cols = point_sources(frames[0].image, geometry.elevation, 10)
    star_az, star_el = star_directions(frames[0].timestamp, geometry.site)

    def matched(elevation, azimuth) -> int:
        miss = separation(azimuth[rows, cols][:, None], elevation[rows, cols][:, None], star_az[None], star_el[None]).min(axis=1)
        return int((miss < 1.5).sum())

    assert matched(geometry.elevation, geometry.azimuth) >= 6  # 7 here; the rest are hot pixels and faint stars not listed
    stored = read_skymap(SKYMAP)
    for flip in ("none", "rows", "columns"):
        assert matched(flipped(stored.elevation, flip), flipped(stored.azimuth, flip)) <= 1, flip  # 0 here


def test_the_zenith_pixel_maps_to_the_site(gako):
    _, geometry = gako
    for altitude in (90.0, 110.0, 150.0, 230.0):
        ground = geometry.ground(altitude)
        assert ground.latitude[geometry.zenith] == pytest.approx(geometry.site.latitude, abs=0.02)
        assert ground.longitude[geometry.zenith] == pytest.approx(geometry.site.longitude, abs=0.05)


@pytest.mark.parametrize("altitude", [110.0, 150.0])
def test_shell_points_from_azimuth_elevation_agree_with_the_skymaps_precomputed_map(gako, altitude):
    _, geometry = gako
    precomputed = geometry.ground(altitude)  # the skymap's own values (centres of its corners)
    lat, lon = shell_point(geometry.site, geometry.azimuth, geometry.elevation, altitude)
    east, north = east_north(geometry.site, lat, lon, altitude)
    above_10 = np.nan_to_num(geometry.elevation, nan=-90) >= 10
    difference = np.hypot(east - precomputed.east, north - precomputed.north)[above_10]
    assert np.isfinite(difference).all()
    assert difference.max() < WORST_110_KM_DIFFERENCE * altitude / 110
    assert np.median(difference) < 0.05


def test_the_dasc_calibration_gives_a_consistent_map(settings):
    """DASC azimuth/elevation files with the site's location: the zenith on the site, north
    of the site where azimuth is near 0 and east where it is near 90, and neighbouring pixels
    no farther apart on the shell than the lens's 0.36 degrees allow."""
    frame = read_frames(DASC_FRAME)[0]
    geometry = settings.sky_finder().geometry(frame.site, frame.imager, frame.image.shape)
    assert geometry.site.latitude == pytest.approx(float(frame.metadata["GLAT"]))
    ground = geometry.ground(110.0)
    assert ground.latitude[geometry.zenith] == pytest.approx(geometry.site.latitude, abs=0.02)
    elevation = np.nan_to_num(geometry.elevation, nan=-90)
    sky = elevation >= 30
    towards = lambda azimuth: sky & (elevation <= 60) & (np.abs((geometry.azimuth - azimuth + 180) % 360 - 180) < 5)  # noqa: E731
    assert (ground.north[towards(0)] > 50).all() and (ground.east[towards(90)] > 50).all()
    assert (ground.north[towards(180)] < -50).all() and (ground.east[towards(270)] < -50).all()
    step = np.hypot(np.diff(ground.east, axis=1), np.diff(ground.north, axis=1))[sky[:, 1:] & sky[:, :-1]]
    slant_at_30 = 110 / np.sin(np.radians(30))
    assert np.nanmax(step) < 2 * slant_at_30 * np.radians(0.36) / np.sin(np.radians(30))


def test_a_file_that_is_no_skymap_is_an_input_error(tmp_path):
    bad = tmp_path / "themis_skymap_abcd_20110305-+_vXX.sav"
    bad.write_bytes(b"not idl at all")
    with pytest.raises(InputError, match="not an IDL save file"):
        read_skymap(bad)
    with pytest.raises(InputError, match="not found"):
        read_skymap(tmp_path / "missing.sav")
