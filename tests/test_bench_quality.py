"""The quality benchmark's --quick mode end to end: it makes its own small synthetic data (no
``data/`` needed), trains two tiny models and writes the full report structure. Checks the
structure and ranges only, never a quality or timing threshold."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _in_unit_interval(value: float) -> bool:
    return 0.0 <= value <= 1.0


def test_quick_benchmark_writes_the_report(tmp_path):
    output = tmp_path / "bench_quality.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--quick", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(output.read_text())

    assert report["quick"] is True
    assert report["machine"]["cpus"] >= 1 and report["machine"]["torch_threads_per_worker"] >= 1
    assert "--quick" in report["command"] and report["wall_seconds"] > 0
    assert {"pn", "nnpu", "pnu_validated"} <= set(report["methods"])
    assert report["validation"]["best_eta"] in (0.0, 1.0)
    assert not report["missing_runs"]
    for method in report["methods"].values():
        assert method["runs"] == 1
        assert _in_unit_interval(method["patch_roc_auc"]["mean"])
        for stage in ("scan", "crf"):
            for metric in ("iou", "f1", "boundary_f1"):
                stat = method[stage][metric]
                assert all(_in_unit_interval(stat[k]) for k in ("mean", "min", "max"))
    assert set(report["unsupervised"]) == {"otsu", "otsu_bgsub", "p95_bgsub"}
    for scores in report["unsupervised"].values():
        assert all(_in_unit_interval(v) for v in scores.values())
    if report["real_frames"]["arc_frames"]:  # data/real/valid present: arc-level detection on real frames too
        for scores in report["unsupervised_real"].values():
            assert _in_unit_interval(scores["arcs_found"]) and _in_unit_interval(scores["arcs_real"]) and scores["reference_arcs"] > 0
        for method in report["methods"].values():
            assert all(_in_unit_interval(method["real"]["crf"][m]["mean"]) for m in ("iou", "arcs_found", "arcs_real"))
    assert "skipped" in report["gillam"] or _in_unit_interval(report["gillam"]["arc_fraction_max"])
    assert "| method |" in output.with_suffix(".md").read_text()
    assert output.with_suffix(".png").stat().st_size > 0


def test_an_unknown_method_is_refused_before_any_work():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--methods", "pn,unknown_method"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "unknown methods ['unknown_method']" in result.stderr and "pnu_default" in result.stderr


def test_real_frames_are_scanned_whole_and_scored_without_their_ignored_pixels():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from quality import MaskScores, SkyFrame

    sky, arcs, ignore = np.ones((64, 64), bool), np.zeros((64, 64), np.int16), np.zeros((64, 64), bool)
    arcs[30:34, 4:60] = 1
    ignore[28:36, 4:60] = True
    ignore[30:34, 4:60] = False  # the arc's ambiguous edges are ignored, the arc itself is scored
    frame = SkyFrame("band", np.zeros((64, 64), np.float32), sky, arcs > 0, arcs, ignore)
    assert frame.scored.sum() == sky.sum() - ignore.sum()
    predicted = np.zeros((64, 64), bool)
    predicted[27:37, 4:60] = True  # the arc drawn wider, across the ignored band
    scores = MaskScores(min_area=20)
    scores.add(predicted, frame)
    result = scores.result()
    assert (result["arcs_found"], result["predicted_arcs"], result["arcs_real"]) == (1.0, 1, 1.0)
    assert result["iou"] == pytest.approx(4 * 56 / (6 * 56))  # the two scored rows beyond the band are false
