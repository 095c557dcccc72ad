"""The speed benchmark's --quick mode end to end, on tiny inputs made here (no ``models/``,
``patches/``, ``data/`` or archive needed): a randomly initialised model, its archive built by
``serving/build_mar.py``, one synthetic minute and a few hundred patches. It trains in a child
process and serves through a real TorchServe on free ports. Checks the structure and ranges
only, never a timing threshold."""

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from arcscan.config import load_params, settings_from
from arcscan.core.patches import NEGATIVE, POSITIVE, unlabeled_set
from arcscan.core.synth import write_minute
from servers import random_model_archive

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SUMMARY = {
    "fast_path_ms_per_frame", "reference_ms_per_frame", "reference_over_fast_path", "crf_ms",
    "training_seconds", "training_peak_rss_mb", "worker_peak_rss_mb", "max_sustained_frames_per_second",
    "imagers_in_real_time", "open_loop_offered_frames_per_second", "open_loop_kept_up",
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A random model, its archive, one held-out synthetic minute and 192 training patches
    (32 of them labelled: the labels need not be right to time training)."""
    root = tmp_path_factory.mktemp("bench-speed")
    archive = random_model_archive(root, "bench-1")
    checkpoint = root / "random.pt"
    frames_path, _ = write_minute(root / "data", seed=3, start=datetime(2030, 1, 1, 6, tzinfo=timezone.utc), n_frames=4)
    params = load_params(ROOT / "params.yaml")
    settings = settings_from(params)
    patches = unlabeled_set([frames_path], 192, np.random.default_rng(0), settings.preprocess, settings.patches.size, settings.sky_finder())
    patches.labels[:16], patches.labels[16:32] = POSITIVE, NEGATIVE
    return {
        "--checkpoint": checkpoint,
        "--data": frames_path.parent,
        "--patches": patches.save(root / "train.npz"),
        "--archive": archive,
    }


def run_quick(inputs: dict[str, Path], output: Path) -> dict:
    options = [str(part) for item in inputs.items() for part in item]
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--quick", *options, "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(output.read_text())


def test_quick_benchmark_trains_serves_and_summarises(inputs, tmp_path):
    report = run_quick(inputs, tmp_path / "bench_speed.json")

    assert list(report)[0] == "summary" and set(report["summary"]) == SUMMARY
    assert report["quick"] is True and report["machine"]["torch_threads"] >= 1
    summary = report["summary"]
    assert all(summary[k] > 0 for k in ("fast_path_ms_per_frame", "reference_ms_per_frame", "reference_over_fast_path", "crf_ms"))
    stride = report["fast_path"]["stride"]
    assert summary["fast_path_ms_per_frame"] == report["library"]["summary"][f"stride{stride}"]["ms_median"]
    assert len(report["library"]["frames"]) == 1

    training = report["training"]
    assert (training["epochs"], training["patches"]) == (1, 192)
    assert 0 < training["train_seconds"] < training["process_seconds"]
    assert training["seconds_per_epoch"] == training["train_seconds"]
    assert 50 < training["peak_rss_mb"] < 16_000
    assert summary["training_seconds"] == training["train_seconds"]
    assert summary["training_peak_rss_mb"] == training["peak_rss_mb"]

    runs = report["end_to_end"]
    assert [run["concurrency"] for run in runs] == [1, 4]
    for run in runs:
        assert run["frames"] == 8 and run["errors"] == 0 and run["frames_per_second"] > 0
        assert 0 < run["latency_p50_ms"] <= run["latency_p99_ms"] and run["server_cpu_cores_used"] > 0
        assert len(run["worker_rss_mb"]) == 2  # default_workers_per_model in config.properties
    opened = report["open_loop"]
    assert opened["frames"] == 14 and opened["errors"] == 0 and isinstance(opened["kept_up"], bool)
    assert summary["open_loop_kept_up"] == opened["kept_up"]

    memory = report["serving_memory"]
    assert len(memory["workers"]) == 2 and memory["jvm"]["pid"] not in {w["pid"] for w in memory["workers"]}
    for process in (memory["jvm"], *memory["workers"]):
        assert 0 < process["rss_mb"] <= process["peak_rss_mb"]
    assert memory["peak_rss_mb_sum"] == pytest.approx(memory["jvm"]["peak_rss_mb"] + sum(w["peak_rss_mb"] for w in memory["workers"]))
    assert summary["worker_peak_rss_mb"] == max(w["peak_rss_mb"] for w in memory["workers"])
    assert summary["max_sustained_frames_per_second"] == max(run["frames_per_second"] for run in runs)
    assert summary["imagers_in_real_time"] == int(summary["max_sustained_frames_per_second"] * 3)


def test_quick_benchmark_skips_training_and_serving_without_their_inputs(inputs, tmp_path):
    missing = {**inputs, "--patches": tmp_path / "none.npz", "--archive": tmp_path / "none.mar"}
    report = run_quick(missing, tmp_path / "bench_speed.json")

    assert report["training"].startswith("skipped:") and "none.npz" in report["training"]
    for section in ("end_to_end", "open_loop", "serving_memory"):
        assert report[section].startswith("skipped:") and "none.mar" in report[section]
    summary = report["summary"]
    assert summary["fast_path_ms_per_frame"] > 0
    assert all(summary[k] is None for k in SUMMARY - {"fast_path_ms_per_frame", "reference_ms_per_frame", "reference_over_fast_path", "crf_ms"})
