"""The load test's --quick mode end to end: two synthetic stations through the stream client
against a real TorchServe (random model, free ports). Checks the report's structure and the
exactly-once accounting, never a timing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from servers import random_model_archive

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_quick_load_test_delivers_every_frame_once(tmp_path):
    archive = random_model_archive(tmp_path, "load-1")
    output = tmp_path / "loadtest.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "loadtest.py"), "--quick", "--archive", str(archive), "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(output.read_text())

    assert report["quick"] is True and report["all_exactly_once"] is True
    assert report["network"] == {"imagers": 2, "minutes": 1, "frames_per_minute": 4, "cadence_s": 3.0}
    assert [phase["speed"] for phase in report["phases"]] == [1.0, 10.0]
    for phase in report["phases"]:
        assert phase["frames_expected"] == phase["frames_sent"] == phase["frames_acknowledged"] == 8
        assert (phase["frames_failed"], phase["duplicates"], phase["missing"]) == (0, 0, 0)
        assert phase["offered_frames_per_second"] == pytest.approx(2 / 3 * phase["speed"])
        assert phase["frames_per_second"] > 0 and phase["server_cpu_cores_used"] > 0
        latency = phase["latency_ms"]
        assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
        assert phase["lag_behind_real_time_ms"]["max"] is not None
    assert len(report["serving_memory"]["workers"]) == 2
    assert "x10: 8/8 frames" in result.stdout
