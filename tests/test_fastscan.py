"""The archive's fast batch path against the serving path: same masks where it scans finely,
empty masks without fine scan or CRF where every coarse logit is far below an arc, the same
answer through ONNX Runtime and torch, bad settings refused."""

from datetime import datetime, timezone

import numpy as np
import pytest
import torch

from arcscan.config import load_params, settings_from
from arcscan.core.fastscan import FastScanConfig, FastSegmenter
from arcscan.core.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
from arcscan.core.synth import write_minute
from arcscan.errors import InputError
from arcscan.io.frames import read_frames

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
def test_where_patches_may_be_arcs_the_fast_path_scans_finely_and_agrees_with_the_serving_path(tmp_path, frames, runtime):
    serving = _segmenter(tmp_path)
    fast = FastSegmenter(serving, FastScanConfig(runtime=runtime, frames_per_batch=2), threads=1)
    calls = []
    score = fast.score
    fast.score = lambda patches: calls.append(len(patches)) or score(patches)
    results = fast.segment_batch(frames)
    assert len(results) == len(frames) and len(calls) >= 2  # coarse, then fine; 2 frames per batch
    for frame, result in zip(frames, results):
        reference = serving(frame)
        assert _iou(result.mask, reference.mask) > 0.99
        assert len(result.objects) == len(reference.objects)
        np.testing.assert_allclose(result.probability, reference.probability, atol=1e-3)


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
    ys = np.arange(0, 256, 32)  # the coarse grid: far fewer points than the serving scan's
    assert sum(scored) <= (len(ys) + 1) ** 2 < (256 // SETTINGS.scan.stride + 1) ** 2


def test_a_frame_just_above_the_skip_logit_is_scanned_finely(tmp_path, frames):
    config = FastScanConfig(skip_logit=-4.0)
    serving = _segmenter(tmp_path, constant=-3.9)
    fast = FastSegmenter(serving, config, threads=1)
    result = fast(frames[0])
    assert result.crf_ms > 0  # not skipped: the CRF ran


def test_bad_fast_path_settings_are_refused(tmp_path):
    serving = _segmenter(tmp_path)
    with pytest.raises(InputError, match="multiple of scan.stride"):
        FastSegmenter(serving, FastScanConfig(coarse_stride=3 * SETTINGS.scan.stride // 2))  # not a multiple of it
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
    from arcscan.core.preprocess import model_view

    return model_view(frame, segmenter.sky_of(frame), segmenter.preprocess).model01
