"""Synthetic all-sky minutes: determinism, shapes, ground truth, file round trip."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from scipy import ndimage

from arcscan.io.frames import read_frames, stream0_name
from arcscan.core.synth import SceneConfig, generate_minute, mask_path, read_masks, write_minute

START = datetime(2026, 1, 1, 6, 0, tzinfo=timezone.utc)
CONFIG = SceneConfig()
CLEAR_SKY_WITH_ARCS = SceneConfig(p_no_arcs=0.0, p_moon=0.0, p_clouds=0.0, p_diffuse=0.0)


def distance_from_frame_centre(shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.indices(shape)
    return np.hypot(cols - (shape[1] - 1) / 2, rows - (shape[0] - 1) / 2)


def test_same_seed_gives_identical_frames_and_masks_and_other_seeds_differ():
    frames, masks = generate_minute(11, START, n_frames=3)
    again, masks_again = generate_minute(11, START, n_frames=3)
    other, _ = generate_minute(12, START, n_frames=3)
    assert all(a.image.tobytes() == b.image.tobytes() and a.metadata == b.metadata for a, b in zip(frames, again))
    assert np.array_equal(masks, masks_again)
    assert not np.array_equal(frames[0].image, other[0].image)


def test_frames_look_like_a_themis_minute():
    frames, masks = generate_minute(3, START, n_frames=4, site="abcd", imager="themis42")
    assert masks.shape == (4, 256, 256) and masks.dtype == bool
    for index, frame in enumerate(frames):
        assert frame.image.shape == (256, 256) and frame.image.dtype == np.uint16
        assert (frame.site, frame.imager, frame.index) == ("abcd", "themis42", index)
        assert frame.ccd_background == 3300 and frame.metadata["Pixel depth"] == "16 bits"
        assert frame.metadata["Synthetic seed"] == "3"
        assert frame.timestamp == START + timedelta(seconds=3 * index)
        assert frame.source == stream0_name(START, "abcd", "themis42")
    image = frames[0].image.astype(float)
    corners = np.concatenate([image[:12, :12].ravel(), image[-12:, -12:].ravel()])
    assert 3300 < np.median(corners) < 3800  # CCD background plus a little stray light
    assert np.median(image[108:148, 108:148]) > np.median(corners) + 150  # the sky disc
    # noise is independent per frame, the scene itself barely moves
    assert not np.array_equal(frames[0].image, frames[1].image)


def test_naive_start_is_utc_and_other_shapes_work():
    frames, masks = generate_minute(5, START.replace(tzinfo=None), n_frames=2, shape=(128, 160))
    assert frames[1].timestamp == START + timedelta(seconds=3)
    assert frames[0].image.shape == (128, 160) and masks.shape == (2, 128, 160)


def test_masks_lie_inside_the_sky_disc_and_some_seeds_have_arcs():
    largest_radius = CONFIG.disc_radius[1] + CONFIG.centre_jitter * np.sqrt(2)
    with_arcs = 0
    for seed in range(12):
        frames, masks = generate_minute(seed, START, n_frames=1)
        assert not masks[0][distance_from_frame_centre(masks.shape[1:]) > largest_radius].any()
        assert not masks[0][frames[0].image < 3300].any()
        with_arcs += bool(masks.any())
    assert 3 <= with_arcs <= 11  # arcs in most minutes, not in all


def test_no_arcs_means_empty_masks():
    _, masks = generate_minute(1, START, n_frames=2, config=SceneConfig(p_no_arcs=1.0))
    assert not masks.any()


def _arc_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean counts on the arc minus the mean of a band of sky 1-8 px around it (well
    inside the disc)."""
    inner = distance_from_frame_centre(mask.shape) <= 100
    ring = ndimage.binary_dilation(mask, iterations=8) & ~mask & inner
    return float(image[mask & inner].mean() - image[ring].mean())


def test_arc_pixels_are_brighter_than_the_sky_around_them():
    for seed in range(6):  # a clear sky: every arc stands out
        frames, masks = generate_minute(seed, START, n_frames=1, config=CLEAR_SKY_WITH_ARCS)
        if (masks[0] & (distance_from_frame_centre(masks.shape[1:]) <= 100)).sum() > 20:
            assert _arc_contrast(frames[0].image.astype(float), masks[0]) > 0, seed
    contrasts = []
    for seed in range(12):  # any sky (moon, clouds, diffuse aurora): on average
        frames, masks = generate_minute(seed, START, n_frames=1)
        if (masks[0] & (distance_from_frame_centre(masks.shape[1:]) <= 100)).sum() > 20:
            contrasts.append(_arc_contrast(frames[0].image.astype(float), masks[0]))
    assert len(contrasts) >= 3 and np.mean(contrasts) > 100


def test_arcs_evolve_slowly_over_the_minute():
    _, masks = generate_minute(0, START, n_frames=20, config=CLEAR_SKY_WITH_ARCS)
    overlap = [(a & b).sum() / (a | b).sum() for a, b in zip(masks[:-1], masks[1:])]
    assert min(overlap) > 0.8  # 3 s apart: nearly the same arc
    assert not np.array_equal(masks[0], masks[-1])  # but it does move


def test_write_minute_round_trips_through_the_stream0_reader(tmp_path):
    frames, masks = generate_minute(9, START, n_frames=4)
    frames_path, masks_path = write_minute(tmp_path / "out", 9, START, n_frames=4)
    assert frames_path.name == "20260101_0600_synt_themis99_full.pgm.gz"
    assert masks_path.name == "20260101_0600_synt_themis99_full.mask.npz"
    assert mask_path(frames_path) == masks_path
    read = read_frames(frames_path)
    assert len(read) == 4
    for original, back in zip(frames, read):
        assert np.array_equal(original.image, back.image)
        assert back.metadata == original.metadata and back.source == original.source
    gaps = np.diff([f.timestamp.timestamp() for f in read])
    assert np.allclose(gaps, 3.0)
    assert np.array_equal(read_masks(masks_path), masks)


def test_read_masks_refuses_other_arrays(tmp_path):
    path = tmp_path / "bad.mask.npz"
    np.savez_compressed(path, masks=np.zeros((2, 4), dtype=np.uint8))
    with pytest.raises(ValueError):
        read_masks(path)


def test_synthetic_levels_match_the_real_gillam_frames(gillam_files):
    real = read_frames(gillam_files[0])[0].image.astype(float)
    real_corner = np.median(real[:12, :12])
    for seed in range(4):
        synthetic = generate_minute(seed, START, n_frames=1)[0][0].image.astype(float)
        assert abs(np.median(synthetic[:12, :12]) - real_corner) < 200
