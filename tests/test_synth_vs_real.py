"""The synthetic-vs-real statistics (benchmarks/synth_vs_real.py) measure what they claim:
on artificial images with known stars, noise, profile and arcs, and on synthetic minutes
written with ``write_minute`` whose scene parameters are known."""

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from skimage.morphology import skeletonize

from arcscan.core.preprocess import PreprocessConfig, model_view
from arcscan.core.synth import SceneConfig, read_masks, write_minute
from arcscan.io.frames import read_frames
from benchmarks import synth_vs_real as svr

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 1, 1, 6, 0, tzinfo=timezone.utc)
CLEAR_SKY_WITH_ARCS = SceneConfig(p_no_arcs=0.0, p_moon=0.0, p_clouds=0.0, p_diffuse=0.0)
SHAPE, CENTRE, RADIUS = (256, 256), (127.5, 127.5), 112.0


def disc() -> np.ndarray:
    rows, cols = np.indices(SHAPE)
    return np.hypot(cols - CENTRE[0], rows - CENTRE[1]) <= RADIUS


def gaussian_spot(row: float, col: float, sigma: float, amplitude: float) -> np.ndarray:
    rows, cols = np.indices(SHAPE)
    return amplitude * np.exp(-0.5 * ((rows - row) ** 2 + (cols - col) ** 2) / sigma**2)


def star_positions(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` positions within 90 px of the centre, at least 15 px apart."""
    points: list[tuple[float, float]] = []
    while len(points) < n:
        r, angle = 90 * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        p = (CENTRE[1] + r * np.sin(angle), CENTRE[0] + r * np.cos(angle))
        if all(np.hypot(p[0] - q[0], p[1] - q[1]) >= 15 for q in points):
            points.append(p)
    return np.array(points)


def test_ten_stars_and_the_noise_on_a_flat_noisy_disc_come_out_right():
    rng = np.random.default_rng(0)
    sky = disc()
    stars = star_positions(10, rng)
    image = 0.3 + rng.normal(0.0, 0.02, SHAPE)
    for row, col in stars:
        image += gaussian_spot(row, col, 0.8, 0.25)
    image = np.where(sky, np.clip(image, 0, 1), 0.0)

    found = svr.find_stars(image, sky)
    assert found.count == 10
    nearest = np.hypot(*(found.positions[:, None, :] - stars[None, :, :]).transpose(2, 0, 1)).min(axis=1)
    assert nearest.max() <= 1.0
    assert found.area == svr.interior(sky, 6).sum() and found.per_1e4 == pytest.approx(1e5 / found.area)
    # image minus its 3x3 median, calibrated on white noise; the stars do not bias it
    assert svr.noise_sigma(image, sky) == pytest.approx(0.02, rel=0.05)
    assert svr.robust_sigma(rng.normal(0, 3.0, 100_000)) == pytest.approx(3.0, rel=0.02)


def test_skeleton_length_of_straight_lines():
    for angle in (0, 30, 45, 60, 90, 135):
        image = np.zeros((200, 200), bool)
        t = np.linspace(-80, 80, 2000)
        image[np.rint(100 - t * np.sin(np.radians(angle))).astype(int), np.rint(100 + t * np.cos(np.radians(angle))).astype(int)] = True
        assert svr.skeleton_length(skeletonize(image)) == pytest.approx(160, rel=0.09)


def test_blobs_are_not_stars_but_a_clipped_bright_star_is():
    rng = np.random.default_rng(1)
    sky = disc()
    image = 0.3 + rng.normal(0.0, 0.01, SHAPE)
    image += gaussian_spot(100, 100, 4.0, 0.4)  # a wide blob (moon halo, cloud knot)
    image += gaussian_spot(160, 150, 0.8, 3.0)  # saturates: flat top after clipping
    image = np.where(sky, np.clip(image, 0, 1), 0.0)
    found = svr.find_stars(image, sky)
    assert found.count == 1 and np.hypot(*(found.positions[0] - (160, 150))) <= 1.5


def test_intensity_quantiles_and_clipped_fractions():
    sky = disc()
    values = np.linspace(0.0, 1.0, sky.sum())
    image = np.zeros(SHAPE)
    image[sky] = values  # uniform on [0, 1]: exactly one pixel at 0 and one at 1
    stats = svr.intensity_stats(image, sky)
    for q in (5, 25, 50, 75, 95):
        assert stats[f"q{q:02d}"] == pytest.approx(q / 100, abs=1e-3)
    image[sky] = np.clip(np.linspace(-0.1, 1.2, sky.sum()), 0, 1)
    stats = svr.intensity_stats(image, sky)
    assert stats["at_0"] == pytest.approx(0.1 / 1.3, abs=1e-3) and stats["at_1"] == pytest.approx(0.2 / 1.3, abs=1e-3)


def test_radial_profile_follows_a_ramp_toward_the_edge():
    sky = disc()
    rows, cols = np.indices(SHAPE)
    r = np.hypot(cols - CENTRE[0], rows - CENTRE[1]) / RADIUS
    image = np.where(sky, 0.1 + 0.8 * r, 0.0)
    profile = svr.radial_profile(image, sky, CENTRE, RADIUS)
    assert profile.shape == (8,) and np.all(np.diff(profile) > 0)
    # the median of ring k of an area-weighted ramp: at radius sqrt(((k/8)^2 + ((k+1)/8)^2) / 2)
    k = np.arange(8)
    expected = 0.1 + 0.8 * np.sqrt(((k / 8) ** 2 + ((k + 1) / 8) ** 2) / 2)
    np.testing.assert_allclose(profile, expected, atol=0.02)


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0, 150.0])
def test_a_drawn_band_has_its_width_contrast_and_orientation(angle):
    sky = disc()
    rows, cols = np.indices(SHAPE)
    x, y = cols - CENTRE[0], CENTRE[1] - rows  # y up
    theta = np.radians(angle)
    across = -x * np.sin(theta) + y * np.cos(theta)
    along = x * np.cos(theta) + y * np.sin(theta)
    fwhm = 6.0
    band = np.exp(-0.5 * (across / (fwhm / 2.3548)) ** 2) * (np.abs(along) < 60)
    image = np.where(sky, 0.1 + 0.6 * band, 0.0)
    truth = (band >= 0.5) & sky

    arcs = svr.arc_stats(image, sky, truth)
    assert arcs.count == 1
    assert arcs.widths[0] == pytest.approx(fwhm, abs=1.0)
    assert arcs.contrasts[0] == pytest.approx(0.6 * 0.8, abs=0.1)  # median of the FWHM band ~0.8 of the peak
    tilt, spread = svr.orientation_summary(arcs.orientations[0])
    assert tilt == pytest.approx(min(angle, 180 - angle), abs=3.0) and spread < 5.0
    axial_mean = np.degrees(np.angle(np.mean(np.exp(2j * np.radians(arcs.orientations[0])))) / 2) % 180
    assert min(abs(axial_mean - angle), 180 - abs(axial_mean - angle)) < 3.0  # counter-clockwise, y up

    found = svr.approximate_arcs(image, sky, CENTRE, RADIUS)
    assert (found & truth).sum() >= 0.8 * truth.sum()  # the band lies within the searched centre
    approx = svr.arc_stats(image, sky, found)
    assert approx.count == 1 and approx.widths[0] == pytest.approx(fwhm, abs=1.5)


def test_round_spots_are_not_arcs():
    rng = np.random.default_rng(2)
    sky = disc()
    image = 0.2 + rng.normal(0.0, 0.01, SHAPE)
    for row, col in star_positions(6, rng):
        image += gaussian_spot(row, col, 2.5, 0.5)
    image = np.where(sky, np.clip(image, 0, 1), 0.0)
    assert not svr.approximate_arcs(image, sky, CENTRE, RADIUS).any()


@pytest.fixture(scope="module")
def synthetic_rows(tmp_path_factory) -> list[tuple[dict, float]]:
    """Statistics of two clear-sky minutes with arcs and one without, two frames each,
    written with ``write_minute`` and read back as the benchmark reads data/train."""
    directory = tmp_path_factory.mktemp("synthetic")
    finder = svr.sky_finder(ROOT / "params.yaml", directory / "no-real-data")
    rows = []
    for seed, config in ((3, CLEAR_SKY_WITH_ARCS), (6, CLEAR_SKY_WITH_ARCS), (4, SceneConfig(p_no_arcs=1.0))):
        frames_path, masks_path = write_minute(directory / str(seed), seed, START, n_frames=2, config=config)
        masks = read_masks(masks_path)
        for frame, mask in zip(read_frames(frames_path), masks):
            view = model_view(frame, finder(frame.image, frame.site, frame.imager), PreprocessConfig())
            rows.append((svr.frame_stats(frame, view, mask, arcs=True), config.gain))
    return rows


def test_statistics_of_written_synthetic_minutes(synthetic_rows):
    config = SceneConfig()
    for stats, gain in synthetic_rows:
        # the stretch: 1st and 99.5th percentile of the sky (THEMIS frames are not resampled); the
        # noise floor of the stretch (min_snr) can only leave fewer pixels at 1
        assert stats["at_0"] == pytest.approx(0.01, abs=0.002) and stats["at_1"] <= 0.007
        assert 0 <= stats["q05"] <= stats["q25"] <= stats["q50"] <= stats["q75"] <= stats["q95"] <= 1
        # noise: shot noise of the generator's gain plus its read noise at the sky's median level
        # (a little more: the level varies over the sky and the MAD pools it)
        expected = np.sqrt(gain * stats["level_counts"] + config.read_noise**2)
        assert 0.9 <= stats["noise_counts"] / expected <= 1.25
        assert len(stats["rings"]) == 8 and np.all(np.isfinite(stats["rings"]))
        assert 0 < stats["stars_per_1e4"] < 1e4 * config.stars[1] / 30_000  # some of the 30..200 stars
    with_arcs = [stats for stats, _ in synthetic_rows if "truth_width" in stats]
    assert len(with_arcs) == 4 and all("truth_width" not in stats for stats, _ in synthetic_rows[4:])
    for stats in with_arcs:
        assert config.arc_fwhm[0] - 1 <= stats["truth_width"] <= config.arc_fwhm[1]
        assert stats["truth_contrast"] > 0.1 and stats["truth_tilt"] < 30  # left-right arcs
        # the stand-in for truth on real frames agrees with the truth on these frames
        assert stats["approx_arcs"] >= 1
        assert stats["approx_width"] == pytest.approx(stats["truth_width"], rel=0.3)
        assert stats["approx_contrast"] == pytest.approx(stats["truth_contrast"], abs=0.1)


def test_the_script_skips_absent_folders_and_writes_both_reports(tmp_path, capsys):
    write_minute(tmp_path / "train", 3, START, n_frames=1, config=CLEAR_SKY_WITH_ARCS)
    report = svr.main(["--train", str(tmp_path / "train"), "--real", str(tmp_path / "absent"), "--out", str(tmp_path / "out"), "--generated", "0"])
    assert "absent" in capsys.readouterr().out
    assert set(report["groups"]) == {"synthetic", "synthetic, arcs", "synthetic, no arcs"}
    assert (tmp_path / "out" / "synth_vs_real.json").is_file()
    text = (tmp_path / "out" / "synth_vs_real.md").read_text()
    assert "| intensity median |" in text and "What differs" in text
