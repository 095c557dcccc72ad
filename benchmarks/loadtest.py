"""Load test: a network of imagers played through the stream client against a real TorchServe.

    python benchmarks/loadtest.py [--imagers 20] [--minutes 1] [--speeds 1 2 4] [--concurrency 8]
    python benchmarks/loadtest.py --quick --archive /tmp/arcscan.mar --output /tmp/load.json

Each imager is a synthetic THEMIS-style station (``arcscan.core.synth``) writing one stream0 minute
of 20 frames, 3 s apart, per minute; all stations take their frames at the same instants, as
GPS-synchronised imagers do, so the load comes in bursts of ``--imagers`` frames every 3 s.
The whole set is replayed once per ``--speeds`` entry through ``arcscan.ops.stream.run_stream``
(token from TorchServe's key file, retries, exactly-once ledger), each into its own ledger:
speed 1 is real time, speed 4 four times faster. One TorchServe (serving/config.properties
on free 127.0.0.1 ports, ``serve.temporary``) serves ``--archive`` (default: ``make mar``'s).

Per phase: frames offered and acknowledged, throughput, latency (request released to answer,
retries included) and lag (answer time minus the frame's due time at that speed: how far
behind real time the results are) p50/p99/max, retries, failures, the server's CPU use, and
the exactly-once check: every frame of every file has exactly one line in ``results.jsonl``
and none in ``failed.jsonl``. A phase is stopped after ``--max-seconds`` (frames not sent by
then are reported as missing). Ends with the server's peak memory. Writes
``reports/loadtest.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "serving"))
import serve  # noqa: E402  (serving/serve.py)
from speed import serving_memory  # noqa: E402  (benchmarks/speed.py)

from arcscan.ops.stream import FAILED, RESULTS, StreamConfig, read_ledger, run_stream  # noqa: E402
from arcscan.core.synth import CADENCE_S, write_minute  # noqa: E402

START = datetime(2026, 1, 15, 6, 0, tzinfo=timezone.utc)


def network(folder: Path, imagers: int, minutes: int, frames: int) -> list[Path]:
    """``imagers`` stations x ``minutes`` stream0 files of ``frames`` frames each."""
    files = []
    for station in range(imagers):
        for minute in range(minutes):
            path, _ = write_minute(
                folder, seed=1000 * station + minute, start=START + timedelta(minutes=minute),
                n_frames=frames, site=f"ld{station:02d}", imager=f"themis{station:02d}",
            )
            files.append(path)
    return files


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)), "max": float(max(values))}


def phase(server: serve.Server, files: list[Path], imagers: int, frames: int, speed: float, concurrency: int, output: Path, max_seconds: float) -> dict:
    """Replay ``files`` (``imagers`` stations, ``frames`` per file) at ``speed`` into the ledger
    ``output``; what it delivered and how fast."""
    config = StreamConfig(
        url=server.predictions_url(), token=server.key(), output=output, concurrency=concurrency,
        token_file=server.key_file, renew_url=server.management_url, timeout=120.0,
    )
    cpu = server.cpu_seconds()
    summary = run_stream(config, replay=files, speed=speed, stop_after=max_seconds)
    cpu = server.cpu_seconds() - cpu
    results, failed = read_ledger(output / RESULTS), read_ledger(output / FAILED)
    expected = {(path.name, index) for path in files for index in range(frames)}
    keys = [(entry["file"], entry["index"]) for entry in results]
    duplicates = len(keys) - len(set(keys))
    missing = expected - set(keys)
    return {
        "speed": speed,
        "offered_frames_per_second": imagers / CADENCE_S * speed,
        "frames_expected": len(expected),
        "frames_sent": summary.sent,
        "frames_acknowledged": len(keys),
        "frames_failed": len(failed),
        "duplicates": duplicates,
        "missing": len(missing),
        "exactly_once": not duplicates and not missing and not failed,
        "retries": sum(entry.get("attempts", 1) - 1 for entry in results),
        "duration_s": summary.duration,
        "frames_per_second": len(keys) / summary.duration,
        "latency_ms": _percentiles([entry["latency_ms"] for entry in results]),
        "lag_behind_real_time_ms": _percentiles(_lags(results, speed)),
        "server_cpu_cores_used": cpu / summary.duration,
    }


def _lags(results: list[dict], speed: float) -> list[float]:
    """Answer time minus due time (ms) per frame: due = the first frame's release plus the
    frame's time since the first frame divided by ``speed``."""
    if not results:
        return []
    answered = [datetime.fromisoformat(entry["at"]) for entry in results]
    taken = [datetime.fromisoformat(entry["timestamp"]) for entry in results]
    first = min(range(len(results)), key=lambda i: (taken[i], answered[i]))
    released = answered[first] - timedelta(milliseconds=results[first]["latency_ms"])
    return [
        ((answer - released).total_seconds() - (taken_at - taken[first]).total_seconds() / speed) * 1000
        for answer, taken_at in zip(answered, taken)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=ROOT / "serving" / "model-store" / "arcscan.mar", help="model archive (make mar)")
    parser.add_argument("--imagers", type=int, default=20, help="stations (THEMIS: 20+)")
    parser.add_argument("--minutes", type=int, default=1, help="stream0 minutes per station")
    parser.add_argument("--frames", type=int, default=20, help="frames per minute (3 s apart)")
    parser.add_argument("--speeds", type=float, nargs="+", default=[1.0, 2.0, 4.0], help="replay speeds (1 = real time)")
    parser.add_argument("--concurrency", type=int, default=8, help="stream client requests in flight")
    parser.add_argument("--max-seconds", type=float, default=180.0, help="stop a phase after this long")
    parser.add_argument("--quick", action="store_true", help="2 stations x 4 frames at speeds 1 and 10: proves the code runs")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "loadtest.json")
    args = parser.parse_args()
    if args.quick:
        args.imagers, args.minutes, args.frames, args.speeds = 2, 1, 4, [1.0, 10.0]
    if not args.archive.is_file():
        sys.exit(f"loadtest: {args.archive} not found: build it first (make mar)")

    started = time.perf_counter()
    report: dict = {
        "command": " ".join(sys.argv),
        "machine": {"cpus": psutil.cpu_count(), "processor": platform.processor() or platform.machine()},
        "network": {"imagers": args.imagers, "minutes": args.minutes, "frames_per_minute": args.frames, "cadence_s": CADENCE_S},
        "client": {"concurrency": args.concurrency, "max_seconds_per_phase": args.max_seconds},
        "quick": args.quick,
    }
    with tempfile.TemporaryDirectory(prefix="arcscan-loadtest-") as folder:
        files = network(Path(folder) / "frames", args.imagers, args.minutes, args.frames)
        with serve.temporary(args.archive) as server:
            report["phases"] = [
                phase(server, files, args.imagers, args.frames, speed, args.concurrency, Path(folder) / f"ledger-x{speed:g}", args.max_seconds)
                for speed in args.speeds
            ]
            report["serving_memory"] = serving_memory(server)
    report["all_exactly_once"] = all(p["exactly_once"] for p in report["phases"])
    report["wall_seconds"] = time.perf_counter() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for p in report["phases"]:
        print(
            f"x{p['speed']:g}: {p['frames_acknowledged']}/{p['frames_expected']} frames, {p['frames_per_second']:.1f} frames/s "
            f"(offered {p['offered_frames_per_second']:.1f}), latency p50/p99 {p['latency_ms']['p50']:.0f}/{p['latency_ms']['p99']:.0f} ms, "
            f"lag p99 {p['lag_behind_real_time_ms']['p99']:.0f} ms, retries {p['retries']}, failed {p['frames_failed']}, "
            f"exactly once: {p['exactly_once']}"
        )
    print(f"{args.output} written in {report['wall_seconds']:.0f} s")
    if not report["all_exactly_once"]:
        sys.exit("loadtest: some frames were lost, failed or answered twice (see the report)")


if __name__ == "__main__":
    main()
