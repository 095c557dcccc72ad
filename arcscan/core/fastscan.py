"""The archive's fast batch path: a coarse scan first, the fine scan and the CRF only where arcs can be.

Most archive frames hold no arc (cloud, moon, twilight, clear sky). :class:`FastSegmenter`
scores the patches of a coarse grid (``coarse_stride``, a sub-grid of the serving scan's grid)
of several frames in one batch. A frame whose coarse logits all stay below ``skip_logit`` is
arc-free: its mask is empty without a fine scan or a CRF (the CRF cannot add an arc there: it
caps probabilities at ``1 - gt_prob``, and a uniform unary favouring the sky keeps every pixel
sky). In the other frames, the fine grid (the serving scan's ``scan.stride``) is scored only
within one coarse cell of a coarse point above ``refine_logit``; its other points take the
coarse grid's interpolated logits. Then the CRF and the arc objects run as in
:class:`arcscan.core.segment.Segmenter`, whose preprocessing, settings and tail it shares.

Patches are scored by a :data:`PatchScorer`: ONNX Runtime on CPU (the checkpoint exported in
memory), optionally quantised to int8, or the torch model where a GPU is present.
``benchmarks/archive_speed.py`` measures it against the stride-1 reference and the serving path.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.ndimage import maximum_filter

from arcscan.core.model import ModelConfig, export_onnx
from arcscan.core.preprocess import ModelView, model_view
from arcscan.core.segment import Segmentation, Segmenter, _OUTSIDE_LOGIT, grid_patches, grid_to_pixels, patch_windows, scan_grid
from arcscan.errors import InputError
from arcscan.io.frames import Frame

PatchScorer = Callable[[np.ndarray], np.ndarray]
"""Logits (n,) of a batch of patches (n, 1, size, size), float32."""


@dataclass(frozen=True)
class FastScanConfig:
    """The archive path (params.yaml ``archive``): coarse grid stride (a multiple of
    ``scan.stride``), the coarse logit below which a whole frame is arc-free, the coarse logit
    above which the fine grid around a point is scored, the patch runtime (``auto``: ONNX
    Runtime on CPU, torch on GPU) and how many frames share one batch of patches."""

    coarse_stride: int = 32
    skip_logit: float = -4.0
    refine_logit: float = -10.0
    runtime: str = "auto"
    frames_per_batch: int = 8


def torch_scorer(model: torch.nn.Module) -> PatchScorer:
    """Patches scored by the torch model on its own device."""
    device = next(model.parameters()).device

    @torch.inference_mode()
    def score(patches: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(patches).to(device).contiguous(memory_format=torch.channels_last)
        return model(batch).squeeze(1).float().cpu().numpy()

    return score


def onnx_scorer(model: torch.nn.Module, config: ModelConfig, threads: int, calibration: np.ndarray | None = None) -> PatchScorer:
    """Patches scored by ONNX Runtime (CPU, ``threads`` intra-op threads) on the model
    exported in memory; with ``calibration`` patches, quantised to int8 first (static, QDQ,
    per-channel weights, activation ranges from those patches)."""
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="arcscan-onnx-") as folder:
        exported = export_onnx(model, config, Path(folder) / "model.onnx")
        if calibration is not None:
            exported = quantize_int8(exported, calibration, Path(folder) / "model-int8.onnx")
        exported = exported.read_bytes()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(exported, options, providers=["CPUExecutionProvider"])
    model.to(next(model.parameters()).device)  # the export moved it to the CPU

    def score(patches: np.ndarray) -> np.ndarray:
        return session.run(None, {"patches": patches})[0].reshape(-1)

    return score


def quantize_int8(model_path: Path, calibration: np.ndarray, output: Path, batch: int = 128) -> Path:
    """The ONNX model at ``model_path`` quantised to int8 (ONNX Runtime's static QDQ
    quantisation; activation ranges: min/max over the ``calibration`` patches)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Patches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.ascontiguousarray(calibration[i : i + batch]) for i in range(0, len(calibration), batch))

        def get_next(self) -> dict | None:
            patches = next(self.batches, None)
            return None if patches is None else {"patches": patches}

    prepared = output.with_suffix(".pre.onnx")
    quant_pre_process(str(model_path), str(prepared))
    quantize_static(str(prepared), str(output), Patches(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return output


def calibration_patches(segmenter: Segmenter, frames: int = 4, seed: int = 0) -> np.ndarray:
    """Patches (n, 1, size, size) for int8 calibration: the serving grid's patches of a fixed
    synthetic minute (:func:`arcscan.core.synth.generate_minute`), through the model's own
    preprocessing, so every actor and every run quantises alike."""
    from arcscan.core.synth import generate_minute

    minute, _ = generate_minute(seed, datetime(2020, 1, 1, 6, tzinfo=timezone.utc), n_frames=frames)
    patches = []
    for frame in minute:
        view = model_view(frame, segmenter.sky_of(frame), segmenter.preprocess)
        ys, xs, needed = scan_grid(view.model01.shape, view.model_sky, segmenter.scan.stride)
        gy, gx = np.nonzero(needed)
        patches.append(grid_patches(patch_windows(view.model01, segmenter.scan.patch_size), ys, xs, gy, gx).numpy())
    return np.concatenate(patches)


RUNTIMES = ("auto", "onnxruntime", "onnxruntime-int8", "torch")


def pick_scorer(segmenter: Segmenter, runtime: str, threads: int) -> PatchScorer:
    """The scorer of ``runtime`` for the segmenter's model: ``onnxruntime``,
    ``onnxruntime-int8`` (quantised on :func:`calibration_patches`), ``torch`` or ``auto``
    (torch on a CUDA model, ONNX Runtime otherwise)."""
    model, config = segmenter.model, ModelConfig(patch_size=segmenter.scan.patch_size)
    if runtime == "auto":
        runtime = "torch" if next(model.parameters()).is_cuda else "onnxruntime"
    if runtime == "torch":
        return torch_scorer(model)
    if runtime == "onnxruntime":
        return onnx_scorer(model, config, threads)
    if runtime == "onnxruntime-int8":
        return onnx_scorer(model, config, threads, calibration_patches(segmenter))
    raise InputError(f"archive.runtime: unknown runtime {runtime!r} ({', '.join(RUNTIMES)})")


@dataclass
class _Plan:
    """One frame's scan in progress: its view, fine grid and the logits scored so far."""

    view: ModelView
    ys: np.ndarray
    xs: np.ndarray
    needed: np.ndarray  # fine grid points that reach the sky
    coarse_rows: np.ndarray  # indices of the coarse grid's rows and columns in the fine grid
    coarse_cols: np.ndarray
    coarse: np.ndarray  # fine grid points that are on the coarse grid and reach the sky
    grid: np.ndarray  # logits on the fine grid (scored points; the rest filled in later)
    windows: torch.Tensor


class FastSegmenter:
    """The serving :class:`Segmenter`'s method, coarse to fine, several frames per batch."""

    def __init__(self, segmenter: Segmenter, config: FastScanConfig = FastScanConfig(), scorer: PatchScorer | None = None, threads: int | None = None) -> None:
        stride = segmenter.scan.stride
        if config.coarse_stride % stride or config.coarse_stride < stride:
            raise InputError(f"archive.coarse_stride {config.coarse_stride} is not a multiple of scan.stride {stride}")
        self.segmenter, self.config = segmenter, config
        self.score = scorer or pick_scorer(segmenter, config.runtime, threads or torch.get_num_threads())
        self.patches_scored = 0  # since construction: what the coarse-to-fine scan costs

    def _plan(self, frame: Frame) -> _Plan:
        view = model_view(frame, self.segmenter.sky_of(frame), self.segmenter.preprocess)
        ys, xs, needed = scan_grid(view.model01.shape, view.model_sky, self.segmenter.scan.stride)
        rows, cols = self._coarse_indices(len(ys)), self._coarse_indices(len(xs))
        coarse = np.zeros_like(needed)
        coarse[np.ix_(rows, cols)] = True
        grid = np.full(needed.shape, _OUTSIDE_LOGIT, np.float32)
        return _Plan(view, ys, xs, needed, rows, cols, coarse & needed, grid, patch_windows(view.model01, self.segmenter.scan.patch_size))

    def _coarse_indices(self, n: int) -> np.ndarray:
        """Every ``coarse_stride / stride``-th fine grid index, and the last (as the fine grid
        keeps the last pixel)."""
        return np.unique(np.append(np.arange(0, n, self.config.coarse_stride // self.segmenter.scan.stride), n - 1))

    def _score_points(self, plans: list[_Plan], points: list[np.ndarray]) -> None:
        """Score the grid ``points`` (a boolean grid per plan) of all plans in batches."""
        batch_size = self.segmenter.scan.batch_size
        patches, owners = [], []
        for plan, chosen in zip(plans, points):
            gy, gx = np.nonzero(chosen)
            if len(gy):
                patches.append(grid_patches(plan.windows, plan.ys, plan.xs, gy, gx))
                owners.append((plan, gy, gx))
        if not patches:
            return
        stacked = torch.cat(patches).numpy()
        self.patches_scored += len(stacked)
        logits = np.concatenate([self.score(np.ascontiguousarray(stacked[i : i + batch_size])) for i in range(0, len(stacked), batch_size)])
        start = 0
        for plan, gy, gx in owners:
            plan.grid[gy, gx] = logits[start : start + len(gy)]
            start += len(gy)

    def _refine_points(self, plan: _Plan) -> np.ndarray:
        """Fine grid points to score: within one coarse cell of a coarse point above
        ``refine_logit``, reaching the sky, not yet scored."""
        step = self.config.coarse_stride // self.segmenter.scan.stride
        hot = plan.coarse & (plan.grid >= self.config.refine_logit)
        near = maximum_filter(hot, size=2 * step + 1)
        return near & plan.needed & ~plan.coarse

    def _coarse_logits(self, plan: _Plan, shape: tuple[int, int]) -> np.ndarray:
        """The coarse grid's logits bilinearly interpolated on a grid of ``shape``, in the
        fine grid's index units (``shape`` = the fine grid) or the pixels' (the frame)."""
        coarse = plan.grid[np.ix_(plan.coarse_rows, plan.coarse_cols)]
        if shape == plan.grid.shape:
            return grid_to_pixels(plan.coarse_rows, plan.coarse_cols, coarse, shape)
        return grid_to_pixels(plan.ys[plan.coarse_rows], plan.xs[plan.coarse_cols], coarse, shape)

    def segment_batch(self, frames: list[Frame]) -> list[Segmentation]:
        """Segment frames, their patches scored together (``frames_per_batch`` at a time)."""
        results: list[Segmentation] = []
        for start in range(0, len(frames), self.config.frames_per_batch):
            results.extend(self._segment_group(frames[start : start + self.config.frames_per_batch]))
        return results

    def __call__(self, frame: Frame) -> Segmentation:
        """Segment one frame."""
        return self._segment_group([frame])[0]

    def _segment_group(self, frames: list[Frame]) -> list[Segmentation]:
        start = time.perf_counter()
        plans = [self._plan(frame) for frame in frames]
        self._score_points(plans, [plan.coarse for plan in plans])
        arc_free = [not (plan.grid[plan.coarse] >= self.config.skip_logit).any() for plan in plans]
        live = [plan for plan, skip in zip(plans, arc_free) if not skip]
        refine = [self._refine_points(plan) for plan in live]
        self._score_points(live, refine)
        for plan, refined in zip(live, refine):
            unscored = plan.needed & ~plan.coarse & ~refined
            plan.grid[unscored] = self._coarse_logits(plan, plan.grid.shape)[unscored]
        scan_ms = (time.perf_counter() - start) * 1000 / len(frames)
        results = []
        for frame, plan, skip in zip(frames, plans, arc_free):
            shape = plan.view.model01.shape
            logits = self._coarse_logits(plan, shape) if skip else grid_to_pixels(plan.ys, plan.xs, plan.grid, shape)
            probability = 1.0 / (1.0 + np.exp(-logits))
            results.append(self.segmenter.finish(frame, plan.view, probability, scan_ms, crf=not skip))
        return results
