"""Sky geometry: the disc estimate, elevation maps, imager profiles and the model scale."""

from pathlib import Path

import numpy as np
import pytest

from arcscan.config import load_settings
from arcscan.core.geometry import (
    ImagerProfile, SkyConfig, disc_mask, SkyFinder, estimate_disc, rescale, sky_fraction, sky_from_elevation, to_shape,
)
from arcscan.core.preprocess import PerSky, PreprocessConfig, model_view, rays
from arcscan.errors import InputError
from arcscan.io.calibration import read_elevation
from arcscan.io.frames import Frame, read_frames

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def lit_disc(shape, center, radius, sky=6000.0, dark=3300.0, seed=0) -> np.ndarray:
    """A fisheye frame: a lit disc (brighter towards the horizon, with noise) on dark corners."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    distance = np.hypot(cols - center[0], rows - center[1])
    image = np.where(distance <= radius, sky * (1 + 0.5 * (distance / radius) ** 4), dark)
    return (image + np.random.default_rng(seed).normal(0, 30, shape)).clip(0, 65535).astype(np.uint16)


@pytest.mark.parametrize(("shape", "center", "radius"), [
    ((256, 256), (131.0, 127.0), 124.0),  # THEMIS-like, off centre
    ((512, 512), (246.0, 250.0), 240.0),  # DASC-like
    ((480, 553), (270.0, 245.0), 285.0),  # TREx-like: the disc cut by the frame's edges
])
def test_the_disc_estimate_finds_centre_and_horizon(shape, center, radius):
    (cx, cy), found = estimate_disc(lit_disc(shape, center, radius))
    assert abs(cx - center[0]) < 0.02 * radius and abs(cy - center[1]) < 0.02 * radius
    assert found == pytest.approx(radius, rel=0.03)


def test_an_obstruction_on_the_horizon_does_not_shrink_the_disc():
    image = lit_disc((256, 256), (128.0, 128.0), 120.0)
    image[:60, 150:] = 3300  # a building blocks a corner of the sky
    (cx, cy), radius = estimate_disc(image)
    assert radius == pytest.approx(120.0, rel=0.03) and abs(cx - 128) < 3 and abs(cy - 128) < 3


def test_no_dark_surround_means_no_estimate_and_the_inscribed_disc():
    assert estimate_disc(np.full((100, 120), 5000, np.uint16)) is None
    sky = SkyFinder(SkyConfig())(np.full((100, 120), 5000, np.uint16))
    assert sky.source == "inscribed" and sky.center == (59.5, 49.5) and sky.radius == pytest.approx(50 * sky_fraction(10))


def test_profiles_match_on_site_and_imager_first_match_wins(tmp_path):
    finder = SkyFinder(SkyConfig(imagers=(
        ImagerProfile("one", site="gill", imager="themis*", center=(10, 10), horizon_radius=9),
        ImagerProfile("any", center=(20, 20), horizon_radius=18),
    )))
    image = np.zeros((40, 40), np.uint16)
    assert finder(image, "GILL", "themis19").source == "profile one"
    assert finder(image, "gill", "rgb").source == "profile any"
    with pytest.raises(InputError, match="give either elevation or center and horizon_radius"):
        ImagerProfile("bad", center=(1, 1))


def test_an_elevation_map_gives_the_sky_above_the_minimum_and_its_zenith():
    rows, cols = np.mgrid[:101, :101]
    elevation = (90 - np.hypot(rows - 40, cols - 60)).astype(np.float32)
    elevation[0, 0] = np.nan
    sky = sky_from_elevation(elevation, 60.0, "test")
    assert sky.center == (60.0, 40.0) and sky.radius == pytest.approx(30, rel=0.02)
    assert sky.mask[40, 60] and not sky.mask[40, 95] and not sky.mask[0, 0]


def test_resampling_to_the_model_scale_is_undone_for_the_answer():
    image = np.random.default_rng(1).random((200, 300)).astype(np.float32)
    small = rescale(image, 0.5)
    assert small.shape == (100, 150) and rescale(image, 1.0) is image
    assert to_shape(small, (200, 300)).shape == (200, 300)
    assert abs(float(to_shape(small, (200, 300)).mean()) - float(image.mean())) < 0.01


def test_the_same_sky_at_twice_the_resolution_looks_the_same_to_the_model():
    """A frame and its 2x upsampled copy (a 512 px imager) give the same model input."""
    image = lit_disc((256, 256), (128.0, 128.0), 126.0).astype(np.float32)
    rows, cols = np.mgrid[:256, :256]
    image += 3000 * np.exp(-(((rows - 100) / 6.0) ** 2))  # an east-west arc
    big = np.kron(image, np.ones((2, 2), np.float32))
    finder = SkyFinder(SkyConfig())
    views = [model_view(Frame(a.astype(np.uint16)), finder(a.astype(np.uint16)), PreprocessConfig()) for a in (image, big)]
    assert views[0].scale == pytest.approx(1.0, abs=0.03) and views[1].scale == pytest.approx(0.5, abs=0.02)
    a, b = views[0].model01, views[1].model01
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    both = views[0].model_sky[:h, :w] & views[1].model_sky[:h, :w]
    assert np.median(np.abs(a[:h, :w] - b[:h, :w])[both]) < 0.03


# ----------------------------------------------------------------------------- real imagers


def shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} not present (real samples live in ../shared/data)")
    return path


@pytest.mark.parametrize(("calibration", "frame_file", "radius_tolerance", "centre_px"), [
    ("themis_gako_20110106/themis_skymap_gako_20110305-+_vXX.sav", "themis_gako_20110106/thg_l1_asf_gako_2011010617_v01.cdf", 0.05, 8),
    ("dasc_pkr_20151007/cal/PKR_DASC_0558_20150213_El.FIT", "dasc_pkr_20151007/PKR_DASC_0558_20151007_082351.743.FITS", 0.06, 15),
])
def test_real_calibrations_and_the_disc_estimate_agree(calibration, frame_file, radius_tolerance, centre_px):
    """The sky above 10 degrees from a THEMIS skymap (GAKO) or an elevation FITS (DASC) against
    the estimate from a frame of the same imager."""
    from_calibration = sky_from_elevation(read_elevation(shared(calibration)), 10.0, "calibration")
    (cx, cy), horizon = estimate_disc(read_frames(shared(frame_file))[0].image)
    assert from_calibration.radius == pytest.approx(horizon * sky_fraction(10), rel=radius_tolerance)
    assert abs(cx - from_calibration.center[0]) < centre_px and abs(cy - from_calibration.center[1]) < centre_px


def test_the_shipped_profiles_place_the_real_frames_on_their_calibrations():
    settings = load_settings(ROOT / "params.yaml")
    cal = ROOT / "data" / "real" / "cal"
    if not cal.is_dir():
        pytest.skip(f"{cal} not present (make data)")
    finder = settings.sky_finder()
    dasc = read_frames(ROOT / "data" / "real" / "valid" / "PKR_DASC_0558_20151007_082351.743.FITS")[0]
    assert finder(dasc.image, dasc.site, dasc.imager).source == "profile dasc-pkr"
    gako = read_frames(ROOT / "data" / "real" / "valid" / "thg_l1_asf_gako_2011010617_v01.cdf")[0]
    assert finder(gako.image, gako.site, gako.imager).source == "profile themis-gako"


def test_an_unreadable_elevation_map_is_an_input_error(tmp_path):
    bad = tmp_path / "bad.sav"
    bad.write_bytes(b"not idl")
    with pytest.raises(InputError, match="bad.sav"):
        read_elevation(bad)
    with pytest.raises(InputError, match="not found"):
        read_elevation(tmp_path / "missing.fits")


def test_normalisation_flattens_the_bright_horizon_and_keeps_noise_only_skies_dim():
    """A sky brightening smoothly toward the horizon (twice as bright at the edge) with an arc
    across it: after flattening, the arc outshines the rim; a noise-only sky is not stretched
    over [0, 1]. (A rim that brightens within its last few pixels is left to :func:`glow`.)"""
    from arcscan.core.preprocess import normalize, noise_sigma

    rows, cols = np.mgrid[:256, :256]
    distance = np.hypot(rows - 127.5, cols - 127.5)
    fov = distance <= 112
    rng = np.random.default_rng(0)
    sky = 3300 + 400 * (1 + (distance / 112) ** 2) + rng.normal(0, 10, (256, 256))
    arc = 600 * np.exp(-(((rows - 100) / 3.0) ** 2))
    config = PreprocessConfig()
    flat = normalize(sky + arc, config, None, fov, flatten_sigma=16)
    rim = fov & (distance > 100) & (np.abs(rows - 100) > 20)
    assert flat[98:103, 100:156].mean() > 2 * np.percentile(flat[rim], 90)
    plain = normalize(sky + arc, config, None, fov)
    contrast = [image[98:103, 100:156].mean() - np.percentile(image[rim], 90) for image in (flat, plain)]
    assert contrast[0] > contrast[1] + 0.2  # the rim's glow no longer competes with the arc
    noise = 3300 + rng.normal(0, 10, (256, 256))
    assert noise_sigma(noise.astype(np.float32), fov) == pytest.approx(10 * 0.863, rel=0.1)  # MAD of a 3x3-median residual
    assert normalize(noise, config, None, fov)[fov].max() < 0.5  # about 5 sigma of range over a 20-sigma stretch


def test_the_horizon_glow_goes_and_arcs_crossing_the_edge_or_inside_stay():
    """Dawn on one side (120 degrees of azimuth): a glow that rises over the last 10 px of the
    sky and dims in its last 2 px, as at GAKO and Poker Flat; across it, a thin arc running out
    to the edge; inside, an arc across the sky. Flattening alone leaves the glow as bright as
    the arcs; with the glow removed the rim is dark and both arcs keep their contrast."""
    from dataclasses import replace

    from arcscan.core.preprocess import normalize

    rows, cols = np.mgrid[:256, :256]
    distance, azimuth = np.hypot(rows - 127.5, cols - 127.5), np.degrees(np.arctan2(rows - 127.5, cols - 127.5))
    fov = distance <= 112
    rng = np.random.default_rng(1)
    dawn = np.clip(np.cos(np.radians(azimuth) * 1.5), 0, None) ** 2  # brightest at azimuth 0, none beyond 60 degrees
    rim_profile = np.exp(-(((distance - 109) / 4.0) ** 2))  # peaks 3 px inside the edge
    sky = 3300 + 1500 * rim_profile * dawn + rng.normal(0, 10, (256, 256))
    edge_arc = 600 * np.exp(-(((rows - 127.5) / 2.0) ** 2)) * (cols > 140)  # along the ray at azimuth 0, out to the edge
    inner_arc = 600 * np.exp(-(((cols - 90) / 3.0) ** 2))  # a band across the sky, 38 px from the zenith
    config = PreprocessConfig()
    images = {glow: normalize(sky + edge_arc + inner_arc, replace(config, horizon_glow=glow), None, fov, 16, (127.5, 127.5)) for glow in (0.0, 0.1)}
    rim = fov & (dawn > 0) & (distance > 100) & (np.abs(rows - 127.5) > 12)
    edge_arc_pixels = fov & (np.abs(rows - 127.5) < 1) & (cols > 140) & (distance > 95)
    inner_arc_pixels = fov & (np.abs(cols - 90) < 2) & (np.abs(rows - 127.5) < 40)

    def contrast(image: np.ndarray, pixels: np.ndarray, statistic=np.mean) -> float:  # above the sky's median
        return float(statistic(image[pixels]) - np.median(image[fov]))

    before, after = images[0.0], images[0.1]
    rim_p90 = {glow: contrast(image, rim, lambda v: np.percentile(v, 90)) for glow, image in images.items()}
    assert rim_p90[0.0] > 0.8 * contrast(before, edge_arc_pixels)  # flattening alone: the glow competes with the arcs
    assert contrast(after, edge_arc_pixels) > 3 * rim_p90[0.1]
    assert contrast(after, inner_arc_pixels) > 3 * rim_p90[0.1]
    assert contrast(after, inner_arc_pixels) > 0.8 * contrast(before, inner_arc_pixels)  # the sky inside is left as it was


def test_what_depends_on_the_sky_alone_is_computed_once_per_sky_and_kept_read_only():
    calls = []
    per_sky = PerSky(lambda fov, scale: calls.append(scale) or np.full(fov.shape, scale, np.float32), size=2)
    one, other = disc_mask((64, 64), (31.5, 31.5), 30), disc_mask((64, 64), (31.5, 31.5), 20)
    first = per_sky(one, 2.0)
    assert per_sky(one.copy(), 2.0) is first and calls == [2.0]  # the same sky (another array): kept
    per_sky(one, 3.0), per_sky(other, 2.0)  # other numbers, another sky: computed; the first is dropped (size 2)
    assert per_sky(one, 2.0) is not first and calls == [2.0, 3.0, 2.0, 2.0]
    grid = rays(one, (31.5, 31.5))  # what the horizon glow keeps per sky
    assert not any(array.flags.writeable for array in (grid.ys, grid.xs, grid.azimuth, grid.radius))
