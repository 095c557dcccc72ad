"""Archive speed benchmark: the stride-1 reference, the default serving path and the archive's
fast batch path side by side on the same frames and cores, then the archive job on Ray with 1
and 2 workers.

    python benchmarks/archive_speed.py [--checkpoint models/model.pt] [--frames 10] [--reference-frames N]
    python benchmarks/archive_speed.py --quick --output /tmp/a.json   # proves the code runs

Frames: real arc-free frames (THEMIS Gillam minutes of ``data/real/train/arc_free.txt``, the
THEMIS Gakona level-1 CDF of ``data/real/valid``: clear sky, stars, twilight) and frames with
arcs (Poker Flat DASC of ``data/real/valid`` first, then held-out synthetic nights of
``data/test``), ``--frames`` of each. One process, torch and ONNX Runtime on ``train.threads`` threads (2).

- ``serving``: :class:`~arcscan.core.segment.Segmenter` with params.yaml (what the TorchServe
  handler runs per request: the ``scan.stride`` scan in torch, CRF), one frame at a time.
- ``archive``: :class:`~arcscan.core.fastscan.FastSegmenter` (params.yaml ``archive``: coarse
  scan first, arc-free frames skipped, finer grids down to ``fine_stride`` along the arcs' edges,
  ONNX Runtime, several frames per batch).
- ``reference``: stride 1 (every pixel classified by its own patch), the slowest by far: on
  every frame, or on ``--reference-frames`` of them (half arc-free).

Each path runs on the arc-free frames, then on the frames with arcs: its seconds per frame of
each kind give the speed-up at any share of arc-free frames (the archive's is higher than the
benchmark's half). The archive path also runs with ``runtime: onnxruntime`` (float patches;
the default on CPU is int8) and, on the frames with arcs, with other ``coarse_stride``, ``fine_stride`` and ``logit_slope``
values (where and how finely it scans).
Milliseconds per patch of each runtime (batches of ``scan.batch_size`` patches, median of 5),
patches scored per frame by the serving and archive paths and the CRF's seconds per frame with
arcs (the same CRF in both) say where the time goes.

Reported: frames/s of each path; the archive path's mask IoU against the reference (pooled
over the reference frames) and against the serving path (all frames); arcs of the serving path
that the archive path misses (a serving-path arc no archive-path arc overlaps) and the other
way round; arcs of the reference that each path misses; the share of arc-free frames. Then ``arcscan.archive.pipeline.run`` on a temporary
archive of the source files (whole files: more frames), local Ray with 2 CPUs, 1 worker x 2
threads and 2 workers x 1 thread: frames/s of the whole job (Ray start, actor start and model
load included) and between the first and last commit (steady state), and the peak resident
memory of the job's processes (driver and Ray's, sampled every 0.2 s). The load average before
and after is recorded: other work on the machine slows every path alike but noisily.
Writes ``reports/bench_archive.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import psutil
import torch
from dataclasses import replace
from skimage.measure import label

ROOT = Path(__file__).resolve().parents[1]

from arcscan.archive.manifest import Catalog  # noqa: E402
from arcscan.archive.pipeline import Model, run  # noqa: E402
from arcscan.config import load_settings  # noqa: E402
from arcscan.core.fastscan import FastSegmenter, PatchScorer, calibration_patches, pick_scorer  # noqa: E402
from arcscan.core.model import load_checkpoint  # noqa: E402
from arcscan.core.preprocess import model_view  # noqa: E402
from arcscan.core.segment import Segmenter, scan_grid  # noqa: E402
from arcscan.io.frames import Frame, read_frames  # noqa: E402

MB = 2**20


def source_files(root: Path) -> tuple[list[Path], list[Path]]:
    """Files of real arc-free frames, files of frames with arcs."""
    real = root / "data" / "real"
    names = (real / "train" / "arc_free.txt").read_text().split() if (real / "train" / "arc_free.txt").is_file() else []
    arc_free = [real / "train" / n for n in names if n.endswith(".pgm.gz")] + sorted((real / "valid").glob("*.cdf"))
    arcs = sorted((real / "valid").glob("*.FITS")) + sorted((root / "data" / "test").glob("*.pgm.gz"))
    return arc_free, arcs


def pick(files: list[Path], count: int) -> list[Frame]:
    """``count`` frames taken in turn from the files (first frames first)."""
    per_file = [read_frames(f) for f in files]
    frames = []
    for index in range(max((len(f) for f in per_file), default=0)):
        frames.extend(f[index] for f in per_file if index < len(f))
    return frames[:count]


def _iou(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float | None:
    union = sum(int((a | b).sum()) for a, b in pairs)
    return sum(int((a & b).sum()) for a, b in pairs) / union if union else None


def missed_arcs(found: np.ndarray, wanted: np.ndarray, min_area: int) -> tuple[int, int]:
    """Arcs (connected regions of at least ``min_area`` px) of ``wanted`` that no pixel of
    ``found`` overlaps, and how many arcs ``wanted`` has."""
    regions = label(wanted, connectivity=2)
    labels = [r for r in range(1, regions.max() + 1) if (regions == r).sum() >= min_area]
    return sum(1 for r in labels if not found[regions == r].any()), len(labels)


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def timed_by_kind(segment, arc_free: list[Frame], with_arcs: list[Frame]) -> tuple[list, dict[str, float]]:
    """Results of ``segment`` on the arc-free frames then the frames with arcs, and its seconds
    on each kind and in all."""
    free, free_s = timed(segment, arc_free)
    arcs, arcs_s = timed(segment, with_arcs)
    return free + arcs, {"arc_free": free_s, "with_arcs": arcs_s, "all": free_s + arcs_s}


def speedup_at(share: float, serving: dict[str, float], archive: dict[str, float], counts: dict[str, int]) -> float:
    """Serving time over archive time per frame for an archive whose ``share`` of frames is
    arc-free, from the seconds per frame of each kind measured here."""
    per_frame = lambda seconds, kind: seconds[kind] / counts[kind]
    cost = lambda seconds: share * per_frame(seconds, "arc_free") + (1 - share) * per_frame(seconds, "with_arcs")
    return cost(serving) / cost(archive)


def ms_per_patch(scorer: PatchScorer, patches: np.ndarray, repeats: int = 5) -> float:
    """Median milliseconds per patch of ``scorer`` on one batch of ``patches``."""
    scorer(patches)
    return float(np.median([timed(scorer, patches)[1] for _ in range(repeats)])) * 1000 / len(patches)


def serving_patches(segmenter: Segmenter, frame: Frame) -> int:
    """Patches the serving path scores on ``frame`` (its grid points that reach the sky)."""
    view = model_view(frame, segmenter.sky_of(frame), segmenter.preprocess)
    return int(scan_grid(view.model01.shape, view.model_sky, segmenter.scan.stride)[2].sum())


SWEEP = ({}, {"coarse_stride": 32}, {"fine_stride": 8}, {"logit_slope": 0.15}, {"logit_slope": 0.4})


def settings_sweep(serving: Segmenter, archive: FastSegmenter, with_arcs: list[Frame], served: list, references: dict[int, object], min_area: int) -> list[dict]:
    """The archive path on the frames with arcs with one setting changed at a time (the same
    scorer): seconds and patches per frame, mask IoU against the serving path and against the
    reference (the frames with arcs that have one; ``references`` by index among them), arcs missed."""
    rows = []
    for change in SWEEP:
        variant = FastSegmenter(serving, replace(archive.config, **change), scorer=archive.score)
        results, seconds = timed(variant.segment_batch, with_arcs)
        misses = [missed_arcs(r.mask, s.mask, min_area) for r, s in zip(results, served)]
        rows.append({"change": change or "params.yaml", "seconds_per_frame": seconds / len(with_arcs), "patches_per_frame": variant.patches_scored / len(with_arcs),
                     "iou_vs_serving": _iou([(r.mask, s.mask) for r, s in zip(results, served)]),
                     "iou_vs_reference": _iou([(results[i].mask, reference.mask) for i, reference in references.items()]),
                     "arcs_missed_vs_serving": sum(m for m, _ in misses)})
    return rows


class PeakMemory:
    """Peak of the summed resident memory of this process and its descendants (Ray's)."""

    def __init__(self) -> None:
        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.2):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total / MB)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def ray_runs(files: list[Path], model: Model, params: Path, layouts: list[tuple[int, int]]) -> list[dict]:
    """The archive job on a temporary archive of ``files``, once per (workers, threads)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="arcscan-bench-archive-") as folder:
            archive = Path(folder) / "archive"
            archive.mkdir()
            for path in files:
                shutil.copy(path, archive / path.name)
            for workers, threads in layouts:
                output = Path(folder) / f"catalog-{workers}x{threads}"
                with PeakMemory() as memory:
                    summary = run(archive, output, model, params, workers=workers, threads=threads, show_progress=False)
                entries = Catalog(output).entries()
                times = sorted(datetime.fromisoformat(e["committed"]) for e in entries)
                first = min(entries, key=lambda e: e["committed"])
                steady_frames = summary.frames - first["frames"]
                steady_seconds = (times[-1] - times[0]).total_seconds()
                frames = Catalog(output).table("frames").to_pylist()
                results.append({
                    "workers": workers, "threads_per_worker": threads, "files": summary.files, "frames": summary.frames,
                    "errors": summary.errors, "arc_free_share": sum(1 for f in frames if f["arcs"] == 0) / max(len(frames), 1),
                    "job_seconds": summary.seconds, "job_frames_per_second": summary.frames_per_second,
                    "steady_frames_per_second": steady_frames / steady_seconds if steady_seconds > 0 else None,
                    "peak_rss_mb": memory.peak,
                })
    finally:
        ray.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "model.pt")
    parser.add_argument("--frames", type=int, default=10, help="arc-free frames and frames with arcs (each)")
    parser.add_argument("--reference-frames", type=int, default=None, help="frames scanned at stride 1 (half of them arc-free; default: every frame; 8-10 s each here)")
    parser.add_argument("--quick", action="store_true", help="2 + 2 frames, 1 reference frame, small Ray runs: proves the code runs")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "bench_archive.json")
    args = parser.parse_args()

    params = ROOT / "params.yaml"
    settings = load_settings(params)
    threads = settings.train.threads
    torch.set_num_threads(threads)
    load_before = os.getloadavg()
    serving = settings.segmenter(load_checkpoint(args.checkpoint))
    archive = FastSegmenter(serving, settings.archive, threads=threads)
    free_files, arc_files = source_files(ROOT)
    count = 2 if args.quick else args.frames
    arc_free, with_arcs = pick(free_files, count), pick(arc_files, count)
    frames = arc_free + with_arcs

    floats = FastSegmenter(serving, replace(settings.archive, runtime="onnxruntime"), threads=threads)
    # warm-up on one frame of each imager: ONNX Runtime's first run, each imager's calibration read once
    warm = list({(frame.site, frame.imager): frame for frame in frames}.values())
    for path in (lambda fs: [serving(f) for f in fs], archive.segment_batch, floats.segment_batch):
        path(warm)
    # each path on the arc-free frames, then on the frames with arcs: seconds per frame of each kind
    served, serving_s = timed_by_kind(lambda fs: [serving(f) for f in fs], arc_free, with_arcs)
    archive.patches_scored = 0
    fast, archive_s = timed_by_kind(archive.segment_batch, arc_free, with_arcs)
    archive_patches = archive.patches_scored
    floated, float_s = timed_by_kind(floats.segment_batch, arc_free, with_arcs)
    n_ref = 1 if args.quick else args.reference_frames or len(frames)
    chosen = sorted({*range(min(n_ref - n_ref // 2, len(arc_free))), *range(len(arc_free), min(len(arc_free) + n_ref // 2, len(frames)))})
    stride1 = settings.segmenter(load_checkpoint(args.checkpoint))
    stride1.scan = replace(stride1.scan, stride=1)
    reference, reference_s = timed(lambda: [stride1(frames[i]) for i in chosen])

    min_area = settings.objects.min_area
    references = {i - len(arc_free): r for i, r in zip(chosen, reference) if i >= len(arc_free)}
    sweep = settings_sweep(serving, archive, with_arcs, served[len(arc_free):], references, min_area)
    patches = calibration_patches(serving)[: settings.scan.batch_size]
    patch_ms = {runtime: ms_per_patch(pick_scorer(serving, runtime, threads), patches) for runtime in ("torch", "onnxruntime", "onnxruntime-int8")}
    counts = {"arc_free": len(arc_free), "with_arcs": len(with_arcs)}
    float_misses = [missed_arcs(q.mask, s.mask, min_area) for q, s in zip(floated, served)]
    misses = [missed_arcs(f.mask, s.mask, min_area) for f, s in zip(fast, served)]
    extra = [missed_arcs(s.mask, f.mask, min_area) for f, s in zip(fast, served)]
    by_frame = dict(zip(chosen, reference))
    # arcs of the stride-1 reference that each path misses (the serving path's own arcs may be fragments the reference lacks)
    reference_misses = {name: [missed_arcs(results[i].mask, r.mask, min_area) for i, r in by_frame.items()] for name, results in (("serving", served), ("archive", fast))}
    per_frame = [
        {"frame": f"{frame.source}#{frame.index}", "real_arc_free": i < len(arc_free), "serving_arcs": len(s.objects), "archive_arcs": len(a.objects),
         "archive_skipped_as_arc_free": a.crf_ms == 0.0, "iou_archive_vs_serving": _iou([(a.mask, s.mask)]),
         **({"iou_archive_vs_reference": _iou([(a.mask, by_frame[i].mask)]), "iou_serving_vs_reference": _iou([(s.mask, by_frame[i].mask)])} if i in by_frame else {})}
        for i, (frame, s, a) in enumerate(zip(frames, served, fast))
    ]
    library = {
        "frames": len(frames), "real_arc_free_frames": len(arc_free),
        "arc_free_share_real": len(arc_free) / len(frames),
        "arc_free_share_serving": sum(1 for s in served if not s.objects) / len(frames),
        "serving_frames_per_second": len(frames) / serving_s["all"],
        "archive_frames_per_second": len(frames) / archive_s["all"],
        "archive_over_serving": serving_s["all"] / archive_s["all"],
        "seconds_per_frame": {name: {kind: seconds[kind] / counts[kind] for kind in counts}
                              for name, seconds in (("serving", serving_s), ("archive", archive_s), ("archive_float", float_s))},
        "archive_over_serving_at_arc_free_share": {share: speedup_at(share, serving_s, archive_s, counts) for share in (0.5, 0.7, 0.8, 0.9, 0.95)},
        "patches_per_frame": {"serving": sum(serving_patches(serving, f) for f in frames) / len(frames), "archive": archive_patches / len(frames)},
        "crf_seconds_per_frame_with_arcs": {name: sum(r.crf_ms for r in results[len(arc_free):]) / 1000 / len(with_arcs) for name, results in (("serving", served), ("archive", fast))},
        "ms_per_patch": patch_ms, "patch_batch": len(patches),
        "settings_sweep_on_frames_with_arcs": sweep,
        "float": {
            "frames_per_second": len(frames) / float_s["all"], "over_serving": serving_s["all"] / float_s["all"],
            "over_serving_at_arc_free_share": {share: speedup_at(share, serving_s, float_s, counts) for share in (0.5, 0.7, 0.8, 0.9, 0.95)},
            "iou_vs_serving": _iou([(q.mask, s.mask) for q, s in zip(floated, served)]),
            "arcs_missed_vs_serving": sum(m for m, _ in float_misses),
        },
        "reference_frames": len(chosen), "reference_frames_per_second": len(chosen) / reference_s,
        "iou_archive_vs_reference": _iou([(fast[i].mask, r.mask) for i, r in zip(chosen, reference)]),
        "iou_float_vs_reference": _iou([(floated[i].mask, r.mask) for i, r in zip(chosen, reference)]),
        "iou_serving_vs_reference": _iou([(served[i].mask, r.mask) for i, r in zip(chosen, reference)]),
        "iou_archive_vs_serving": _iou([(a.mask, s.mask) for a, s in zip(fast, served)]),
        "serving_arcs": sum(t for _, t in misses), "arcs_missed_vs_serving": sum(m for m, _ in misses),
        "archive_arcs_not_in_serving": sum(m for m, _ in extra),
        "reference_arcs": sum(t for _, t in reference_misses["serving"]),
        "reference_arcs_missed": {name: sum(m for m, _ in misses_) for name, misses_ in reference_misses.items()},
        "skipped_as_arc_free": sum(1 for row in per_frame if row["archive_skipped_as_arc_free"]),
    }
    model = Model.from_checkpoint(args.checkpoint)
    ray_files = free_files[:1] + arc_files[:2] if args.quick else free_files + [f for f in arc_files if f.suffix == ".FITS"] + [f for f in arc_files if f.suffix != ".FITS"][:4]
    layouts = [(1, 2), (2, 1)]
    rays = ray_runs(sorted(set(ray_files)), model, params, layouts)
    report = {
        "summary": {**{k: library[k] for k in ("serving_frames_per_second", "archive_frames_per_second", "archive_over_serving", "iou_archive_vs_reference",
                                               "iou_serving_vs_reference", "arcs_missed_vs_serving", "reference_arcs", "reference_arcs_missed", "arc_free_share_real",
                                               "archive_over_serving_at_arc_free_share", "iou_float_vs_reference", "ms_per_patch", "patches_per_frame")},
                    "float_over_serving": library["float"]["over_serving"], "float_arcs_missed_vs_serving": library["float"]["arcs_missed_vs_serving"],
                    **{f"ray_{r['workers']}x{r['threads_per_worker']}_steady_frames_per_second": r["steady_frames_per_second"] for r in rays},
                    **{f"ray_{r['workers']}x{r['threads_per_worker']}_peak_rss_mb": r["peak_rss_mb"] for r in rays}},
        "quick": args.quick,
        "machine": {"cpus": psutil.cpu_count(), "threads": threads, "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "checkpoint": {"path": str(args.checkpoint), "version": model.version},
        "archive_settings": settings.archive.__dict__,
        "library": library,
        "ray": rays,
        "frames": per_frame,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: report[k] for k in ("summary", "machine")}, indent=2))


if __name__ == "__main__":
    main()
