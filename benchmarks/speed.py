"""Speed benchmark: the stride-1 reference scan against the fast path, the CRF alone, and
end-to-end throughput through a real TorchServe on loopback.

    python benchmarks/speed.py [--frames 4] [--repeats 3] [--e2e-frames 120] [--quick]

Library part (one process, torch threads as in params.yaml ``train.threads``): for each held-out
frame, the reference (stride 1, every pixel classified by its own patch) and strides 2, 4, 8,
16: median ms per frame over ``--repeats`` runs, and the IoU of each stride's mask (before
and after the CRF) against the reference's. End-to-end part (needs ``make mar``): TorchServe
with serving/config.properties, single-frame stream0 requests from 1, 4 and 16 concurrent
clients: frames per second, p50/p99 latency, CPU use of the server's processes, and peak
resident memory per worker; and an open-loop run offering ``--rate`` frames/s for 30 s (the
whole THEMIS network), with its throughput and p50/p99 latency. Writes
``reports/bench_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import requests
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "serving"))
import serve  # noqa: E402  (serving/serve.py)

from arcscan.config import load_params  # noqa: E402
from arcscan.frames import encode_stream0, read_frames  # noqa: E402
from arcscan.model import load_checkpoint  # noqa: E402
from arcscan.preprocess import normalize  # noqa: E402
from arcscan.segment import ScanConfig, Segmenter, dense_crf  # noqa: E402

STRIDES = (2, 4, 8, 16)


def _median_ms(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def library_benchmark(segmenter: Segmenter, frames: list, repeats: int, strides: tuple[int, ...]) -> dict:
    """Reference vs fast path per frame: ms (median of repeats) and mask agreement with the
    reference, pooled over frames (intersection and union pixel counts summed, so frames
    where both masks are empty do not count as perfect agreement)."""
    scan = segmenter.scan
    rows = []
    for frame in frames:
        segmenter.scan = ScanConfig(scan.patch_size, 1, scan.batch_size)
        reference_ms, reference = _median_ms(lambda: segmenter(frame), 1)  # seconds per frame: once
        row = {"frame": f"{frame.source}#{frame.index}", "reference_ms": reference_ms, "reference_arc_pixels": int(reference.mask.sum()), "strides": {}}
        for stride in strides:
            segmenter.scan = ScanConfig(scan.patch_size, stride, scan.batch_size)
            ms, result = _median_ms(lambda: segmenter(frame), repeats)
            row["strides"][stride] = {
                "ms": ms,
                "scan": _overlap(result.mask_scan, reference.mask_scan),
                "crf": _overlap(result.mask, reference.mask),
            }
        image01 = normalize(frame.image, segmenter.preprocess, frame.ccd_background)
        row["crf_ms"], _ = _median_ms(lambda: dense_crf(reference.probability, image01, segmenter.crf), repeats)
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


def _server_processes(server: serve.Server) -> list[psutil.Process]:
    jvm = psutil.Process(server.pid)
    return [jvm, *jvm.children(recursive=True)]


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

    processes = _server_processes(server)
    cpu_before = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, bodies))
    wall = time.perf_counter() - start
    cpu = sum(p.cpu_times().user + p.cpu_times().system for p in processes) - cpu_before
    workers = [p for p in processes if "model_service_worker" in " ".join(p.cmdline())]
    return {
        "concurrency": concurrency,
        **_throughput(latencies, errors, wall),
        "server_cpu_cores_used": cpu / wall,
        "worker_rss_mb": [p.memory_info().rss / 2**20 for p in workers],
    }


def open_loop(bodies: list[bytes], rate: float, server: serve.Server) -> dict:
    """Offer frames at a fixed rate (as N imagers at their cadence would), whatever the
    answers' pace; latency counts from each frame's scheduled time, so queueing shows."""
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
    return {"offered_frames_per_second": rate, **_throughput(latencies, errors, wall)}


def _throughput(latencies: list[float], errors: int, wall: float) -> dict:
    return {
        "frames": len(latencies),
        "errors": errors,
        "frames_per_second": len(latencies) / wall,
        "latency_p50_ms": float(np.percentile(latencies, 50) * 1000),
        "latency_p99_ms": float(np.percentile(latencies, 99) * 1000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "model.pt")
    parser.add_argument("--frames", type=int, default=8, help="held-out frames for the reference comparison")
    parser.add_argument("--rate", type=float, default=7.0, help="open-loop offered load, frames/s (THEMIS: 20+ imagers, 1 frame per 3 s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--e2e-frames", type=int, default=120, help="frames per end-to-end run")
    parser.add_argument("--quick", action="store_true", help="one small frame set, no reference at full size: proves the code runs")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "bench_speed.json")
    args = parser.parse_args()

    params = load_params(ROOT / "params.yaml")
    torch.set_num_threads(int(params["train"]["threads"]))
    model, _ = load_checkpoint(args.checkpoint)
    segmenter = Segmenter.from_params(model, params)
    files = sorted((ROOT / "data" / "test").glob("*.pgm.gz"))
    frames = [read_frames(path)[0] for path in files[: args.frames]]  # first frame of each held-out night
    report = {
        "machine": {"cpus": psutil.cpu_count(), "processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()},
        "fast_path": {"stride": segmenter.scan.stride, "batch_size": segmenter.scan.batch_size},
    }
    strides = (16,) if args.quick else STRIDES
    if args.quick:
        frames = frames[:1]
    report["library"] = library_benchmark(segmenter, frames, 1 if args.quick else args.repeats, strides)

    archive = ROOT / "serving" / "model-store" / "arcscan.mar"
    if archive.is_file():
        all_frames = [frame for path in files for frame in read_frames(path)]
        count = 8 if args.quick else args.e2e_frames
        bodies = [encode_stream0([all_frames[i % len(all_frames)]]) for i in range(count)]
        server = serve.start()
        try:
            end_to_end(bodies[:4], 2, server)  # warm-up
            report["end_to_end"] = [end_to_end(bodies, c, server) for c in ((1, 4) if args.quick else (1, 4, 16))]
            sustained = [encode_stream0([all_frames[i % len(all_frames)]]) for i in range(int(args.rate * (2 if args.quick else 30)))]
            report["open_loop"] = open_loop(sustained, args.rate, server)
        finally:
            serve.stop()
    else:
        report["end_to_end"] = f"skipped: {archive} not found (make mar)"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "library"} | {"library": report["library"]["summary"]}, indent=2))


if __name__ == "__main__":
    main()
