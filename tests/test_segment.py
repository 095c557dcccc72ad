"""Raster scan equivalence with per-patch classification, the CRF, masks and arc objects."""

import numpy as np
import pytest
import torch

from arcscan.errors import InputError
from arcscan.io.frames import Frame
from arcscan.core.model import ModelConfig, build_model
from arcscan.core.patches import extract_patches
from arcscan.core.preprocess import PreprocessConfig, fov_mask
from arcscan.core.segment import CRFConfig, ScanConfig, Segmenter, _grid, arc_objects, dense_crf, frame_record, scan_logits

SMALL = PreprocessConfig(frame_shape=(64, 64), fov_center=(31.5, 31.5), fov_radius=28)


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
    fov = fov_mask(image.shape, SMALL)
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
    segmenter = Segmenter(model, SMALL, ScanConfig(stride=4), CRFConfig())
    result = segmenter(frame)
    fov = fov_mask((64, 64), SMALL)
    assert result.probability.shape == (64, 64) and result.mask.dtype == bool
    assert not (result.mask & ~fov).any() and not (result.mask_scan & ~fov).any()
    assert 0.0 <= result.arc_fraction <= 1.0 and result.scan_ms > 0 and result.crf_ms > 0
    assert set(frame_record(frame, result)) == {"index", "timestamp", "site", "imager", "arc_fraction", "objects", "scan_ms", "crf_ms"}


def test_wrong_frame_size_is_an_input_error(model):
    segmenter = Segmenter(model, SMALL)
    with pytest.raises(InputError, match="expected 64x64 pixels, got 32x48"):
        segmenter(Frame(np.zeros((48, 32), np.uint16), {}, "f.npy", 3))


def test_crf_snaps_an_uncertain_band_to_the_bright_band():
    image = np.full((64, 64), 0.1, np.float32)
    image[28:36] = 0.9  # a bright east-west band
    probability = np.full((64, 64), 0.3, np.float32)
    probability[24:40, 8:56] = 0.7  # the scan's blurry, too wide guess
    mask = dense_crf(probability, image, CRFConfig())
    assert mask[28:36, 12:52].mean() > 0.95
    assert mask[:20].mean() < 0.05 and mask[44:].mean() < 0.05


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
