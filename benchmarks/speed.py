"""Speed benchmark: the stride-1 reference scan against the fast path, the CRF alone, training
time and memory of the default configuration, and end-to-end throughput and memory through a
real TorchServe on loopback.

    python benchmarks/speed.py [--frames 8] [--repeats 3] [--e2e-frames 120] [--rate 7]
    python benchmarks/speed.py --quick --output /tmp/s.json   # proves the code runs (~1 min)

Library part (one process, torch threads as in params.yaml ``train.threads``): for each held-out
frame (``--data``, default ``data/test``), the reference (stride 1, every pixel classified by
its own patch) and strides 2, 4, 8, 16: median ms per frame over ``--repeats`` runs, and the
IoU of each stride's mask (before and after the CRF) against the reference's.

Training part (``--patches``, default ``patches/train.npz``; skipped without it): the default
configuration of params.yaml, built as the ``train`` stage builds it but without MLflow, in a
child process that imports only what training needs. Reported: the training loop's seconds
(and per epoch), the child's wall seconds (with interpreter start, imports, loading patches)
and its peak resident memory: the kernel's high-water mark ``VmHWM``, which the child reads
from ``/proc/self/status`` when done. Not ``wait4``'s ``ru_maxrss``: on Linux a child started
by (v)fork + exec reports there at least the parent's resident size at the fork.

End-to-end part (``--archive``, default ``serving/model-store/arcscan.mar`` from ``make mar``;
skipped without it): TorchServe with serving/config.properties, its ports moved to free
127.0.0.1 ports (``serve.free_port_config``), in a temporary run folder, so it never clashes
with ``make serve`` or the tests. Single-frame stream0 requests from 1, 4 and 16 concurrent
clients: frames per second, p50/p99 latency, CPU use of the server's processes and resident
memory per worker; an open-loop run offering ``--rate`` frames/s for 30 s (the whole THEMIS
network): throughput, p50/p99 latency and whether it kept up (no errors, at least 95% of the
offered rate, p99 under the 3 s cadence); and ``serving_memory``, read just before the server
stops: peak (``VmHWM``) and current resident memory of the JVM and of each worker.

The report opens with a ``summary``: fast-path and reference ms per frame and their ratio, CRF
ms, training seconds and peak memory, worker peak memory, the best closed-loop throughput
without errors and how many THEMIS imagers (one frame per 3 s) it carries in real time, and
whether the open-loop run kept up. ``--quick``: one frame, the fast path's stride only, one
training epoch, short serving runs. Writes ``reports/bench_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import psutil
import requests
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "serving"))
import serve  # noqa: E402  (serving/serve.py)

from arcscan.config import load_settings  # noqa: E402
from arcscan.io.frames import Frame, encode_stream0, read_frames  # noqa: E402
from arcscan.core.model import load_checkpoint  # noqa: E402
from arcscan.core.segment import Segmenter, dense_crf  # noqa: E402
from arcscan.core.synth import CADENCE_S  # noqa: E402  (THEMIS: one frame per 3 s)

STRIDES = (2, 4, 8, 16)
MB = 2**20
T = TypeVar("T")

# What the training child runs (``python -c``), rather than a function of this module, whose
# imports would load the serving and CRF libraries too (~70 MB more resident memory).
TRAIN_CHILD = """
import json, sys
from dataclasses import replace
from arcscan.config import load_settings
from arcscan.core.patches import PatchSet
from arcscan.core.train import train_pnu

params_file, patches_file, epochs, result_file = sys.argv[1:]
settings = load_settings(params_file)
config = replace(settings.train, epochs=int(epochs)) if epochs else settings.train
patches = PatchSet.load(patches_file)
result = train_pnu(patches, config, settings.model, settings.augment)
with open("/proc/self/status") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
with open(result_file, "w") as out:
    json.dump({"patches": len(patches), "epochs": config.epochs, "threads": config.threads,
               "train_seconds": result.seconds, "peak_rss_mb": peak_kb / 1024}, out)
"""


def _median_ms(function: Callable[[], T], repeats: int) -> tuple[float, T]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def library_benchmark(segmenter: Segmenter, frames: list[Frame], repeats: int, strides: tuple[int, ...]) -> dict:
    """Reference vs fast path per frame: ms (median of repeats) and mask agreement with the
    reference, pooled over frames (intersection and union pixel counts summed, so frames
    where both masks are empty do not count as perfect agreement)."""
    scan = segmenter.scan
    rows = []
    for frame in frames:
        segmenter.scan = replace(scan, stride=1)
        reference_ms, reference = _median_ms(lambda: segmenter(frame), 1)  # seconds per frame: once
        row = {"frame": f"{frame.source}#{frame.index}", "reference_ms": reference_ms, "reference_arc_pixels": int(reference.mask.sum()), "strides": {}}
        for stride in strides:
            segmenter.scan = replace(scan, stride=stride)
            ms, result = _median_ms(lambda: segmenter(frame), repeats)
            row["strides"][stride] = {
                "ms": ms,
                "scan": _overlap(result.mask_scan, reference.mask_scan),
                "crf": _overlap(result.mask, reference.mask),
            }
        row["crf_ms"], _ = _median_ms(lambda: dense_crf(reference.probability, reference.image01, segmenter.crf, reference.sky), repeats)
        rows.append(row)
    segmenter.scan = scan
    summary = {"reference_ms_median": statistics.median(r["reference_ms"] for r in rows), "crf_ms_median": statistics.median(r["crf_ms"] for r in rows)}
    for stride in strides:
        ms = statistics.median(r["strides"][stride]["ms"] for r in rows)
        entry = {"ms_median": ms, "speedup_vs_reference": summary["reference_ms_median"] / ms}
        for stage in ("scan", "crf"):
            overlaps = [r["strides"][stride][stage] for r in rows]
            entry[f"iou_{stage}_vs_reference"] = _pooled_iou(overlaps)
            per_frame = [o["intersection"] / o["union"] for o in overlaps if o["union"]]
            entry[f"iou_{stage}_vs_reference_worst_frame"] = min(per_frame) if per_frame else None
        summary[f"stride{stride}"] = entry
    return {"summary": summary, "frames": rows}


def _overlap(a: np.ndarray, b: np.ndarray) -> dict:
    return {"intersection": int((a & b).sum()), "union": int((a | b).sum())}


def _pooled_iou(overlaps: list[dict]) -> float | None:
    union = sum(o["union"] for o in overlaps)
    return sum(o["intersection"] for o in overlaps) / union if union else None


def train_default(params_file: Path, patches: Path, epochs: int | None) -> dict:
    """Train the default configuration (``epochs`` overridden unless None) in a child process
    running :data:`TRAIN_CHILD`: its figures, seconds per epoch and the child's wall seconds."""
    with tempfile.TemporaryDirectory(prefix="arcscan-bench-train-") as folder:
        result_file = Path(folder) / "result.json"
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", TRAIN_CHILD, str(params_file), str(patches), str(epochs or ""), str(result_file)],
            cwd=ROOT, check=True,
        )
        wall = time.perf_counter() - start
        result = json.loads(result_file.read_text())
    return {**result, "seconds_per_epoch": result["train_seconds"] / result["epochs"], "process_seconds": wall}


def end_to_end(bodies: list[bytes], concurrency: int, server: serve.Server) -> dict:
    """Send every body once with ``concurrency`` clients; throughput, latency, CPU."""
    url, headers = server.predictions_url(), {**server.auth(), "Content-Type": "application/octet-stream"}
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    session_local = threading.local()

    def send(body: bytes) -> None:
        nonlocal errors
        session = getattr(session_local, "session", None) or requests.Session()
        session_local.session = session
        start = time.perf_counter()
        answer = session.post(url, data=body, headers=headers, timeout=60)
        with lock:
            latencies.append(time.perf_counter() - start)
            errors += answer.status_code != 200

    cpu_before = server.cpu_seconds()
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, bodies))
    wall = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        **_throughput(latencies, errors, wall),
        "server_cpu_cores_used": (server.cpu_seconds() - cpu_before) / wall,
        "worker_rss_mb": [p.memory_info().rss / MB for p in server.workers()],
    }


def open_loop(bodies: list[bytes], rate: float, server: serve.Server) -> dict:
    """Offer frames at a fixed rate (as N imagers at their cadence would), whatever the
    answers' pace; latency counts from each frame's scheduled time, so queueing shows. Kept up:
    no errors, at least 95% of the offered rate answered and p99 under the frame cadence."""
    url, headers = server.predictions_url(), {**server.auth(), "Content-Type": "application/octet-stream"}
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    start = time.perf_counter() + 0.5

    def send(index: int) -> None:
        nonlocal errors
        due = start + index / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        answer = requests.post(url, data=bodies[index], headers=headers, timeout=60)
        with lock:
            latencies.append(time.perf_counter() - due)
            errors += answer.status_code != 200

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(send, range(len(bodies))))
    wall = time.perf_counter() - start
    result = {"offered_frames_per_second": rate, **_throughput(latencies, errors, wall)}
    kept_up = not errors and result["frames_per_second"] >= 0.95 * rate and result["latency_p99_ms"] < CADENCE_S * 1000
    return {**result, "kept_up": kept_up}


def _throughput(latencies: list[float], errors: int, wall: float) -> dict:
    return {
        "frames": len(latencies),
        "errors": errors,
        "frames_per_second": len(latencies) / wall,
        "latency_p50_ms": float(np.percentile(latencies, 50) * 1000),
        "latency_p99_ms": float(np.percentile(latencies, 99) * 1000),
    }


def _memory(process: psutil.Process) -> dict:
    """Peak (the kernel's high-water mark since the process started, ``VmHWM``) and current
    resident memory of a process, MB."""
    status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return {"pid": process.pid, "peak_rss_mb": peak_kb / 1024, "rss_mb": process.memory_info().rss / MB}


def serving_memory(server: serve.Server) -> dict:
    """Peak and current resident memory of the JVM and of each worker; the sum of the peaks
    bounds the whole server's peak from above."""
    memory = {"jvm": _memory(server.processes()[0]), "workers": [_memory(p) for p in server.workers()]}
    return {**memory, "peak_rss_mb_sum": memory["jvm"]["peak_rss_mb"] + sum(w["peak_rss_mb"] for w in memory["workers"])}


def serving_benchmark(archive: Path, frames: list[Frame], concurrencies: tuple[int, ...], count: int, rate: float, seconds: float) -> dict:
    """TorchServe serving ``archive`` on free ports in a temporary run folder: ``count`` frames
    per closed-loop run at each concurrency, ``seconds`` of open loop at ``rate``, then memory."""
    sustained = int(rate * seconds)
    bodies = [encode_stream0([frames[i % len(frames)]]) for i in range(max(count, sustained))]
    with serve.temporary(archive) as server:
        end_to_end(bodies[:4], 2, server)  # warm-up
        closed_loop = [end_to_end(bodies[:count], c, server) for c in concurrencies]
        return {
            "end_to_end": closed_loop,
            "open_loop": open_loop(bodies[:sustained], rate, server),
            "serving_memory": serving_memory(server),
        }


def summarise(library: dict, stride: int, training: dict | None, serving: dict | None) -> dict:
    """The headline figures (None where a part was skipped). Imagers carried in real time: the
    best closed-loop throughput without errors times the 3 s cadence."""
    fast = library[f"stride{stride}"]["ms_median"]
    sustained = None
    if serving:
        sustained = max((run["frames_per_second"] for run in serving["end_to_end"] if not run["errors"]), default=None)
    return {
        "fast_path_ms_per_frame": fast,
        "reference_ms_per_frame": library["reference_ms_median"],
        "reference_over_fast_path": library["reference_ms_median"] / fast,
        "crf_ms": library["crf_ms_median"],
        "training_seconds": training["train_seconds"] if training else None,
        "training_peak_rss_mb": training["peak_rss_mb"] if training else None,
        "worker_peak_rss_mb": max((w["peak_rss_mb"] for w in serving["serving_memory"]["workers"]), default=None) if serving else None,
        "max_sustained_frames_per_second": sustained,
        "imagers_in_real_time": math.floor(sustained * CADENCE_S) if sustained else None,
        "open_loop_offered_frames_per_second": serving["open_loop"]["offered_frames_per_second"] if serving else None,
        "open_loop_kept_up": serving["open_loop"]["kept_up"] if serving else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "model.pt")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "test", help="held-out stream0 minutes (*.pgm.gz)")
    parser.add_argument("--patches", type=Path, default=ROOT / "patches" / "train.npz", help="training patches (training part skipped without them)")
    parser.add_argument("--archive", type=Path, default=ROOT / "serving" / "model-store" / "arcscan.mar", help="model archive (end-to-end part skipped without it)")
    parser.add_argument("--frames", type=int, default=8, help="held-out frames for the reference comparison")
    parser.add_argument("--rate", type=float, default=7.0, help="open-loop offered load, frames/s (THEMIS: 20+ imagers, 1 frame per 3 s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--e2e-frames", type=int, default=120, help="frames per end-to-end run")
    parser.add_argument("--quick", action="store_true", help="one frame, the fast path's stride only, 1 training epoch, short serving runs: proves the code runs")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "bench_speed.json")
    args = parser.parse_args()

    params_file = ROOT / "params.yaml"
    settings = load_settings(params_file)
    torch.set_num_threads(settings.train.threads)
    segmenter = settings.segmenter(load_checkpoint(args.checkpoint))
    files = sorted(args.data.glob("*.pgm.gz"))
    if not files:
        parser.error(f"no *.pgm.gz frames in {args.data}")
    frames = [read_frames(path)[0] for path in files[: 1 if args.quick else args.frames]]  # first frame of each held-out night
    stride = segmenter.scan.stride
    strides = (stride,) if args.quick else tuple(sorted({*STRIDES, stride}))
    library = library_benchmark(segmenter, frames, 1 if args.quick else args.repeats, strides)

    training = train_default(params_file, args.patches, 1 if args.quick else None) if args.patches.is_file() else None
    serving = None
    if args.archive.is_file():
        all_frames = [frame for path in files for frame in read_frames(path)]
        concurrencies = (1, 4) if args.quick else (1, 4, 16)
        serving = serving_benchmark(args.archive, all_frames, concurrencies, 8 if args.quick else args.e2e_frames, args.rate, 2 if args.quick else 30)
    skipped_serving = f"skipped: {args.archive} not found (make mar)"
    report = {
        "summary": summarise(library["summary"], stride, training, serving),
        "quick": args.quick,
        "machine": {"cpus": psutil.cpu_count(), "processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()},
        "fast_path": {"stride": stride, "batch_size": segmenter.scan.batch_size},
        "library": library,
        "training": training or f"skipped: {args.patches} not found (dvc repro patches)",
        **(serving or dict.fromkeys(("end_to_end", "open_loop", "serving_memory"), skipped_serving)),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "library"} | {"library": report["library"]["summary"]}, indent=2))


if __name__ == "__main__":
    main()
