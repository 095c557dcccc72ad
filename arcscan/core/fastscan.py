"""The archive's fast batch path: coarse to fine, finely only along the arcs' edges.

Most archive frames hold no arc (cloud, moon, twilight, clear sky), and in the others most of
the sky is far from an arc's edge. :class:`FastSegmenter` scores the patches of a coarse grid
(``coarse_stride``) of several frames in one batch. A frame whose coarse logits all stay below
``skip_logit`` is arc-free: its mask is empty without a finer scan or a CRF (the CRF caps
probabilities at ``1 - gt_prob``, and a uniform unary favouring the sky keeps every pixel sky).
In the other frames the grid is halved level by level down to ``fine_stride`` (finer than the
serving scan's ``scan.stride``), scoring a cell's new points only where its corners' logits
come near the range the CRF distinguishes (the logits of ``1 - gt_prob`` .. ``gt_prob``),
widened by ``logit_slope`` per pixel of the cell, as far as a logit may move inside it;
elsewhere the new points take the cell's bilinear interpolation. The finest grid is
interpolated to every pixel; then the CRF and the arc objects run as in
:class:`arcscan.core.segment.Segmenter`, whose preprocessing, settings and tail it shares.

Patches are scored by a :data:`PatchScorer`: ONNX Runtime on CPU (the checkpoint exported in
memory and, by default, quantised to int8), or the torch model where a GPU is present.
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

from arcscan.core.model import ModelConfig, export_onnx
from arcscan.core.preprocess import ModelView, model_view
from arcscan.core.segment import Segmentation, Segmenter, _OUTSIDE_LOGIT, grid_patches, grid_to_pixels, patch_windows, scan_grid
from arcscan.errors import InputError
from arcscan.io.frames import Frame

PatchScorer = Callable[[np.ndarray], np.ndarray]
"""Logits (n,) of a batch of patches (n, 1, size, size), float32."""


@dataclass(frozen=True)
class FastScanConfig:
    """The archive path (params.yaml ``archive``): the first grid's stride, the finest grid's
    (``coarse_stride`` = ``fine_stride`` x a power of two), the coarse logit below which a whole
    frame is arc-free, how far (logit units per pixel) a patch's logit may move across a cell
    (:meth:`FastSegmenter._cells_to_split`), the patch runtime (``auto``: ONNX Runtime int8 on
    CPU, torch on GPU) and how many frames share one batch of patches."""

    coarse_stride: int = 16
    fine_stride: int = 4
    skip_logit: float = -4.0
    logit_slope: float = 0.27
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
    (torch on a CUDA model, ONNX Runtime int8 otherwise)."""
    model, config = segmenter.model, ModelConfig(patch_size=segmenter.scan.patch_size)
    if runtime == "auto":
        runtime = "torch" if next(model.parameters()).is_cuda else "onnxruntime-int8"
    if runtime == "torch":
        return torch_scorer(model)
    if runtime == "onnxruntime":
        return onnx_scorer(model, config, threads)
    if runtime == "onnxruntime-int8":
        return onnx_scorer(model, config, threads, calibration_patches(segmenter))
    raise InputError(f"archive.runtime: unknown runtime {runtime!r} ({', '.join(RUNTIMES)})")


def _upsample(grid: np.ndarray) -> np.ndarray:
    """A grid's points and the midpoints between them (bilinear): its grid at half the stride."""
    rows, cols = grid.shape
    finer = np.empty((2 * rows - 1, 2 * cols - 1), np.float32)
    finer[::2, ::2] = grid
    finer[1::2, ::2] = (grid[:-1] + grid[1:]) / 2
    finer[::2, 1::2] = (grid[:, :-1] + grid[:, 1:]) / 2
    finer[1::2, 1::2] = (grid[:-1, :-1] + grid[1:, :-1] + grid[:-1, 1:] + grid[1:, 1:]) / 4
    return finer


@dataclass
class _Plan:
    """One frame's scan in progress: its view, the model-scale sky and patch windows padded to
    whole coarse cells, and the logits of the current grid (``stride`` pixels apart)."""

    view: ModelView
    sky: np.ndarray
    windows: torch.Tensor
    stride: int
    grid: np.ndarray

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """The current grid's rows and columns (pixels of the padded frame)."""
        return np.arange(0, self.sky.shape[0], self.stride), np.arange(0, self.sky.shape[1], self.stride)

    def reach(self) -> np.ndarray:
        """The current grid's points from which the sky can be reached (:func:`scan_grid`'s rule)."""
        return scan_grid(self.sky.shape, self.sky, self.stride)[2]

    def pixels(self) -> np.ndarray:
        """The current grid's logits bilinearly interpolated to every pixel of the frame (model scale)."""
        height, width = self.view.model01.shape
        return grid_to_pixels(*self.axes(), self.grid, self.sky.shape)[:height, :width]


class FastSegmenter:
    """The serving :class:`Segmenter`'s method, coarse to fine, several frames per batch."""

    def __init__(self, segmenter: Segmenter, config: FastScanConfig = FastScanConfig(), scorer: PatchScorer | None = None, threads: int | None = None) -> None:
        levels = config.coarse_stride // max(config.fine_stride, 1)
        if config.fine_stride < 1 or levels * config.fine_stride != config.coarse_stride or levels & (levels - 1):
            raise InputError(f"archive.coarse_stride {config.coarse_stride} is not archive.fine_stride {config.fine_stride} times a power of two")
        if config.logit_slope < 0:
            raise InputError(f"archive.logit_slope {config.logit_slope} is negative (logit units per pixel a patch's logit may move)")
        self.segmenter, self.config = segmenter, config
        crf = segmenter.crf
        self.certain_logit = float(np.log(crf.gt_prob / (1 - crf.gt_prob))) if crf.enabled else 0.0
        self.score = scorer or pick_scorer(segmenter, config.runtime, threads or torch.get_num_threads())
        self.patches_scored = 0  # since construction: what the coarse-to-fine scan costs

    def _plan(self, frame: Frame) -> _Plan:
        view = model_view(frame, self.segmenter.sky_of(frame), self.segmenter.preprocess)
        stride = self.config.coarse_stride
        padded = tuple(stride * int(np.ceil((n - 1) / stride)) + 1 for n in view.model01.shape)
        image, sky = np.zeros(padded, np.float32), np.zeros(padded, bool)
        image[: view.model01.shape[0], : view.model01.shape[1]] = view.model01
        sky[: view.model_sky.shape[0], : view.model_sky.shape[1]] = view.model_sky
        grid = np.full(((padded[0] - 1) // stride + 1, (padded[1] - 1) // stride + 1), _OUTSIDE_LOGIT, np.float32)
        return _Plan(view, sky, patch_windows(image, self.segmenter.scan.patch_size), stride, grid)

    def _score_points(self, plans: list[_Plan], points: list[np.ndarray]) -> None:
        """Score the grid ``points`` (a boolean grid per plan) of all plans in batches."""
        batch_size = self.segmenter.scan.batch_size
        patches, owners = [], []
        for plan, chosen in zip(plans, points):
            gy, gx = np.nonzero(chosen)
            if len(gy):
                patches.append(grid_patches(plan.windows, *plan.axes(), gy, gx))
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

    def _cells_to_split(self, plan: _Plan) -> np.ndarray:
        """Cells of the current grid whose corners' logits meet the range the CRF tells apart,
        widened by how far a logit may move across the cell (``logit_slope`` x stride)."""
        corners = np.stack([plan.grid[:-1, :-1], plan.grid[1:, :-1], plan.grid[:-1, 1:], plan.grid[1:, 1:]])
        reach = self.certain_logit + self.config.logit_slope * plan.stride
        return (corners.max(0) >= -reach) & (corners.min(0) <= reach)

    def _split(self, plan: _Plan) -> np.ndarray:
        """Halve the plan's grid (bilinear); return its new points to score: those of split
        cells that reach the sky."""
        split = self._cells_to_split(plan)
        plan.grid, plan.stride = _upsample(plan.grid), plan.stride // 2
        rows, cols = split.shape
        new = np.zeros(plan.grid.shape, bool)
        for dy in range(3):
            for dx in range(3):
                new[dy : dy + 2 * rows : 2, dx : dx + 2 * cols : 2] |= split
        new[::2, ::2] = False  # the old points, scored already
        return new & plan.reach()

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
        self._score_points(plans, [plan.reach() for plan in plans])
        arc_free = [not (plan.grid >= self.config.skip_logit).any() for plan in plans]
        live = [plan for plan, skip in zip(plans, arc_free) if not skip]
        while live and live[0].stride > self.config.fine_stride:
            self._score_points(live, [self._split(plan) for plan in live])
        scan_ms = (time.perf_counter() - start) * 1000 / len(frames)
        results = []
        for frame, plan, skip in zip(frames, plans, arc_free):
            probability = 1.0 / (1.0 + np.exp(-plan.pixels()))
            results.append(self.segmenter.finish(frame, plan.view, probability, scan_ms, crf=not skip))
        return results
