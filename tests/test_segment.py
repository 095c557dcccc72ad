"""Raster scan equivalence with per-patch classification, the CRF, masks and arc objects."""

import numpy as np
import pytest
import torch

from arcscan.errors import InputError
from arcscan.io.frames import Frame
from arcscan.core.model import ModelConfig, build_model
from arcscan.core.patches import extract_patches
from arcscan.core.geometry import ImagerProfile, SkyConfig, disc_mask
from arcscan.core.preprocess import PreprocessConfig
from arcscan.core.segment import CRFConfig, ObjectConfig, ScanConfig, Segmenter, _grid, arc_objects, crf_guide, dense_crf, frame_record, scan_logits

SMALL = PreprocessConfig(sky_radius=28)
SMALL_SKY = SkyConfig(min_elevation=0, imagers=(ImagerProfile("small", center=(31.5, 31.5), horizon_radius=28),))
SMALL_DISC = disc_mask((64, 64), (31.5, 31.5), 28)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model(ModelConfig()).eval()
    with torch.no_grad():  # random BN statistics so scores vary across patches
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).random((64, 64)).astype(np.float32)


def _patch_scores(model, image, xs, ys):
    patches = torch.from_numpy(extract_patches(image, np.asarray(xs), np.asarray(ys), 32)).unsqueeze(1)
    with torch.no_grad():
        return model(patches).squeeze(1).numpy()


def test_stride_one_scan_is_per_pixel_patch_classification(model, image):
    fov = SMALL_DISC
    logits = scan_logits(model, image, fov, ScanConfig(stride=1, batch_size=100))
    ys, xs = np.nonzero(fov)
    pick = np.random.default_rng(1).choice(len(ys), 40, replace=False)
    expected = _patch_scores(model, image, xs[pick], ys[pick])
    assert np.allclose(logits[ys[pick], xs[pick]], expected, atol=1e-4)
    assert (logits[~fov] == -20).all()  # outside the disc nothing is scored


@pytest.mark.parametrize("batch_size", [7, 256])
def test_strided_scan_equals_patch_scores_on_the_grid_and_interpolates_between(model, image, batch_size):
    fov = np.ones(image.shape, bool)
    logits = scan_logits(model, image, fov, ScanConfig(stride=8, batch_size=batch_size))
    grid = _grid(64, 8)
    assert list(grid) == [0, 8, 16, 24, 32, 40, 48, 56, 63]
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    expected = _patch_scores(model, image, gx.ravel(), gy.ravel()).reshape(gy.shape)
    assert np.allclose(logits[np.ix_(grid, grid)], expected, atol=1e-4)
    midpoint = logits[4, 8]  # halfway between rows 0 and 8 on column 8
    assert midpoint == pytest.approx((expected[0, 1] + expected[1, 1]) / 2, abs=1e-4)


def test_segmenter_masks_stay_in_the_sky_disc(model):
    frame = Frame(np.random.default_rng(2).integers(3000, 9000, (64, 64), dtype=np.uint16), {}, "f", 0)
    segmenter = Segmenter(model, SMALL, ScanConfig(stride=4), CRFConfig(), sky=SMALL_SKY)
    result = segmenter(frame)
    fov = SMALL_DISC
    assert result.probability.shape == (64, 64) and result.mask.dtype == bool
    assert result.scale == 1.0 and result.sky_source == "profile small" and (result.sky == fov).all()
    assert not (result.mask & ~fov).any() and not (result.mask_scan & ~fov).any()
    assert 0.0 <= result.arc_fraction <= 1.0 and result.scan_ms > 0 and result.crf_ms > 0
    assert set(frame_record(frame, result)) == {"index", "timestamp", "site", "imager", "arc_fraction", "sky", "objects", "scan_ms", "crf_ms"}


def test_any_frame_size_is_resampled_to_the_model_scale_and_answered_in_its_own_pixels(model):
    rows, cols = np.mgrid[:96, :160]
    lit = (cols - 80.0) ** 2 + (rows - 47.5) ** 2 <= 60.0**2  # a disc cut by the top and bottom edges
    image = np.where(lit, 6000, 3300).astype(np.uint16)
    segmenter = Segmenter(model, SMALL, ScanConfig(stride=4), CRFConfig(), ObjectConfig(min_area=20))
    result = segmenter(Frame(image, {}, "wide.npy", 0))
    assert result.sky_source == "estimated" and result.mask.shape == result.probability.shape == (96, 160)
    assert result.scale == pytest.approx(28 / (60 * 80 / 90), rel=0.05)  # sky above 10 degrees -> 28 px
    assert not (result.mask & ~result.sky).any() and result.sky.sum() > 0


def test_an_elevation_map_of_another_size_is_an_input_error(model, tmp_path):
    from astropy.io import fits

    rows, cols = np.mgrid[:64, :64]
    fits.writeto(tmp_path / "el.fits", (90 - np.hypot(rows - 31.5, cols - 31.5) * 3).astype(np.float32))
    sky = SkyConfig(imagers=(ImagerProfile("cam", site="abc", elevation="el.fits"),), base_dir=str(tmp_path))
    segmenter = Segmenter(model, SMALL, sky=sky)
    segmenter.sky_of(Frame(np.zeros((64, 64), np.uint16), {"Site unique ID": "abc"}, "f.npy", 0))
    with pytest.raises(InputError, match=r"f\.npy: frame 3: 32x48 pixels, but imager profile 'cam' has a 64x64 elevation map"):
        segmenter.sky_of(Frame(np.zeros((48, 32), np.uint16), {"Site unique ID": "abc"}, "f.npy", 3))
    segmenter.sky_of(Frame(np.zeros((48, 32), np.uint16), {}, "f.npy", 3))  # no profile: estimated, never refused


def test_crf_snaps_an_uncertain_band_to_the_bright_band():
    image = np.full((64, 64), 0.1, np.float32)
    image[28:36] = 0.9  # a bright east-west band
    probability = np.full((64, 64), 0.3, np.float32)
    probability[24:40, 8:56] = 0.7  # the scan's blurry, too wide guess
    mask = dense_crf(probability, image, CRFConfig())
    assert mask[28:36, 12:52].mean() > 0.95
    assert mask[:20].mean() < 0.05 and mask[44:].mean() < 0.05


def test_crf_keeps_a_faint_band_its_intensity_scale_follows_the_noise():
    """A band only 1.6 noise sigmas above its sky, found by the scan: the bilateral kernel on
    2 noise sigmas of the smoothed guide keeps it; on 4 (about the fixed 13 grey levels used
    before, on this noise) it cannot tell the band from the sky and erases it."""
    rng = np.random.default_rng(0)
    image = np.clip(0.3 + rng.normal(0, 0.05, (128, 128)), 0, 1).astype(np.float32)
    image[60:68] += 0.08
    probability = np.full(image.shape, 0.2, np.float32)
    probability[56:72, 16:112] = 0.95  # the scan's guess, a little too wide
    kept = dense_crf(probability, image, CRFConfig())
    assert kept[60:68, 24:104].mean() > 0.8 and kept[:50].mean() < 0.01 and kept[76:].mean() < 0.01
    assert dense_crf(probability, image, CRFConfig(bilateral_srgb_noise=4.0))[60:68].mean() < 0.1


def test_crf_guide_noise_is_the_smoothed_pixel_noise():
    rng = np.random.default_rng(1)
    noise = rng.normal(0.5, 0.05, (200, 200)).astype(np.float32)
    guide, sigma = crf_guide(noise, np.ones(noise.shape, bool), 1.0)
    assert guide.std() < noise.std() / 2
    assert 0.8 < sigma / (0.05 / (2 * np.sqrt(np.pi))) < 1.1  # white noise under a 1 px Gaussian: sigma / (2 sqrt(pi))
    outside = np.zeros(noise.shape, bool)
    outside[50:150, 50:150] = True
    assert (crf_guide(noise, outside, 1.0)[0][~outside] == 0).all()


def test_arc_objects_measure_a_band():
    mask = np.zeros((100, 200), bool)
    mask[40:46, 20:180] = True  # 160 px long, 6 px wide, east-west
    mask[80:82, 5:8] = True  # a speck below min_area
    (arc,) = arc_objects(mask, np.full(mask.shape, 0.5, np.float32), min_area=20)
    assert arc.area == 960 and arc.length == pytest.approx(160, abs=10)
    assert arc.mean_width == pytest.approx(6, abs=0.5) and abs(arc.orientation_deg) < 1
    assert (arc.centroid_x, arc.centroid_y) == pytest.approx((99.5, 42.5)) and arc.mean_intensity == pytest.approx(0.5)
    (tilted,) = arc_objects(np.eye(100, dtype=bool) | np.eye(100, k=1, dtype=bool), np.ones((100, 100), np.float32))
    assert tilted.orientation_deg == pytest.approx(-45, abs=2)  # y grows downwards: a "\\" band
