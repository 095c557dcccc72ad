"""The archive's fast batch path against full scans: the stride-``fine_stride`` scan's answer
where every cell is split, the stride-1 answer at a fraction of its patches where the logits
are far from the CRF's range away from an edge, empty masks without finer scan or CRF where
every coarse logit is far below an arc, the same answer through ONNX Runtime and torch, bad
settings refused."""

from dataclasses import replace

from datetime import datetime, timezone

import numpy as np
import pytest
import torch

from arcscan.config import load_params, settings_from
from arcscan.core.fastscan import FastScanConfig, FastSegmenter
from arcscan.core.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
from arcscan.core.preprocess import model_view
from arcscan.core.segment import grid_patches, patch_windows, scan_grid
from arcscan.core.synth import write_minute
from arcscan.errors import InputError
from arcscan.io.frames import Frame, read_frames

SETTINGS = settings_from(load_params("params.yaml"))


def _segmenter(tmp_path, constant: float | None = None, gain: float = 1.0):
    """The serving segmenter of a random model (``constant``: one logit for every patch;
    ``gain``: its output layer scaled, so that its logits spread over several units)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig())
    with torch.no_grad():
        model.fc.weight *= gain
    if constant is not None:
        torch.nn.init.zeros_(model.fc.weight)
        torch.nn.init.constant_(model.fc.bias, constant)
    path = save_checkpoint(tmp_path / "model.pt", model, ModelConfig(), SETTINGS.preprocess)
    return SETTINGS.segmenter(load_checkpoint(path))


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    path, _ = write_minute(tmp_path_factory.mktemp("minute"), seed=5, start=datetime(2014, 2, 3, 6, tzinfo=timezone.utc), n_frames=3)
    return read_frames(path)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_where_every_cell_may_hold_an_edge_the_fast_path_is_the_fine_stride_scan(tmp_path, frames, runtime):
    serving = _segmenter(tmp_path)  # a random model: its logits stay within the CRF's range, every cell is split
    config = FastScanConfig(runtime=runtime, frames_per_batch=2)
    fast = FastSegmenter(serving, config, threads=1)
    calls = []
    score = fast.score
    fast.score = lambda patches: calls.append(len(patches)) or score(patches)
    results = fast.segment_batch(frames)
    assert len(results) == len(frames) and len(calls) >= 3  # coarse, then each finer level; 2 frames per batch
    fine = _segmenter(tmp_path)
    fine.scan = replace(fine.scan, stride=config.fine_stride)
    for frame, result in zip(frames, results):
        reference = fine(frame)
        assert _iou(result.mask, reference.mask) > 0.99
        assert len(result.objects) == len(reference.objects)
        np.testing.assert_allclose(result.probability[result.sky], reference.probability[result.sky], atol=1e-3)


def _brightness_scorer(patches: np.ndarray) -> np.ndarray:
    """A patch scorer for the refinement's logic: the logit follows the brightness of the
    patch's centre, as a trained model's follows an arc (and as smoothly: 16 px of 32)."""
    centre = patches[:, 0, 8:24, 8:24].mean(axis=(1, 2))
    return (40.0 * (centre - 0.55)).astype(np.float32)


def _with_bright_arc(frame: Frame) -> Frame:
    """The frame with a bright arc, 5 px wide (sigma), bent across the sky."""
    yy, xx = np.mgrid[: frame.image.shape[0], : frame.image.shape[1]]
    band = np.exp(-0.5 * ((np.hypot(yy - 400.0, xx - 128.0) - 300.0) / 5.0) ** 2)
    return Frame(frame.image + (6000 * band).astype(frame.image.dtype), frame.metadata, frame.source, frame.index)


def test_the_fine_scan_follows_the_edges_and_matches_the_stride_1_scan_at_a_fraction_of_its_patches(tmp_path, frames):
    serving = _segmenter(tmp_path)
    frame = _with_bright_arc(frames[0])
    view = model_view(frame, serving.sky_of(frame), serving.preprocess)
    ys, xs, needed = scan_grid(view.model01.shape, view.model_sky, 1)
    gy, gx = np.nonzero(needed)
    windows = patch_windows(view.model01, 32)
    every = np.full(needed.shape, -20.0, np.float32)
    every[gy, gx] = np.concatenate([_brightness_scorer(grid_patches(windows, ys, xs, gy[i : i + 4096], gx[i : i + 4096]).numpy()) for i in range(0, len(gy), 4096)])
    stride1 = serving.finish(frame, view, 1.0 / (1.0 + np.exp(-every)), 0.0)
    assert 0.02 < stride1.arc_fraction < 0.2  # an arc, not the sky
    fast = FastSegmenter(serving, FastScanConfig(), scorer=_brightness_scorer)
    assert _iou(fast(frame).mask, stride1.mask) > 0.95
    assert fast.patches_scored < len(gy) / 20  # far fewer than the stride-1 scan's
    coarse = FastSegmenter(serving, replace(FastScanConfig(), fine_stride=FastScanConfig().coarse_stride), scorer=_brightness_scorer)
    assert _iou(coarse(frame).mask, stride1.mask) < _iou(fast(frame).mask, stride1.mask)  # the finer levels are what brings it there


def test_a_frame_whose_coarse_logits_are_all_far_below_an_arc_is_arc_free_without_fine_scan_or_crf(tmp_path, frames):
    serving = _segmenter(tmp_path, constant=-30.0)
    fast = FastSegmenter(serving, FastScanConfig(), threads=1)
    scored = []
    score = fast.score
    fast.score = lambda patches: scored.append(len(patches)) or score(patches)
    result = fast(frames[0])
    reference = serving(frames[0])
    assert not result.mask.any() and not reference.mask.any() and result.objects == []
    assert result.crf_ms == 0.0 and reference.crf_ms > 0
    coarse = len(np.arange(0, 256, SETTINGS.archive.coarse_stride)) + 1  # the coarse grid: far fewer points than the serving scan's
    assert sum(scored) <= coarse**2 < (256 // SETTINGS.scan.stride + 1) ** 2


def test_a_frame_just_above_the_skip_logit_is_scanned_finely(tmp_path, frames):
    config = FastScanConfig(skip_logit=-4.0)
    serving = _segmenter(tmp_path, constant=-3.9)
    fast = FastSegmenter(serving, config, threads=1)
    result = fast(frames[0])
    assert result.crf_ms > 0  # not skipped: the CRF ran


def test_bad_fast_path_settings_are_refused(tmp_path):
    serving = _segmenter(tmp_path)
    with pytest.raises(InputError, match="not archive.fine_stride 4 times a power of two"):
        FastSegmenter(serving, FastScanConfig(coarse_stride=24, fine_stride=4))
    with pytest.raises(InputError, match="logit_slope -0.1 is negative"):
        FastSegmenter(serving, FastScanConfig(logit_slope=-0.1))
    with pytest.raises(InputError, match="unknown runtime .*onnxruntime-int8"):
        FastSegmenter(serving, FastScanConfig(runtime="tensorrt"))
    with pytest.raises(InputError, match="unknown parameters"):
        settings_from({"archive": {"coarse_strid": 32}})


def test_the_int8_runtime_scores_patches_as_the_float_model_does(tmp_path, frames):
    """ONNX Runtime's int8 model (calibrated on a fixed synthetic minute) scores the frame's
    patches as the float model does, but for a few outliers, and its masks agree with the
    serving path's."""
    serving = _segmenter(tmp_path, gain=300.0)
    int8 = FastSegmenter(serving, FastScanConfig(runtime="onnxruntime-int8"), threads=1)
    exact = FastSegmenter(serving, FastScanConfig(runtime="onnxruntime"), threads=1)
    windows = torch.nn.functional.unfold(torch.from_numpy(serving_view(serving, frames[0]))[None, None], 32, stride=16)
    patches = windows.transpose(1, 2).reshape(-1, 1, 32, 32).numpy()
    low, high = int8.score(patches), exact.score(patches)
    assert np.corrcoef(low, high)[0, 1] > 0.9  # a random network: int8 is tested on the trained model by benchmarks/archive_speed.py
    assert np.median(np.abs(low - high)) < 0.05 * np.ptp(high)
    assert _iou(int8(frames[0]).mask, serving(frames[0]).mask) > 0.95


def serving_view(segmenter, frame) -> np.ndarray:
    return model_view(frame, segmenter.sky_of(frame), segmenter.preprocess).model01
