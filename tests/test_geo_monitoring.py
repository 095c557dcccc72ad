"""The drift monitor: per-imager arc statistics the stream client exports (scraped from its real
metrics server), the drift score against the training set, the imager alert rules under
``promtool test rules`` (and that the tests bite), and the Grafana dashboard, checked offline
(its queries name only exported metrics and pass promtool's PromQL parser)."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from arcscan.core.synth import write_minute
from arcscan.io.frames import read_frames
from arcscan.ops.stream.drift import BINS, DriftMonitor, histogram, load_reference, psi, reference_from_minutes, reference_histograms, sky_brightness
from arcscan.ops.stream.metrics import Metrics
from servers import free_port

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "k8s" / "monitoring"
IMAGER_ALERTS = ("ArcscanImagerStuck", "ArcscanImagerNoAnswers", "ArcscanImagerDrift")


def promtool():
    found = shutil.which("promtool")
    if not found:
        pytest.skip("promtool not installed (make tools)")
    return found


def run_promtool(*args: str, cwd: Path | None = None):
    import subprocess

    return subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def minutes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("minutes")
    for seed in range(3):
        write_minute(folder, seed, datetime(2026, 1, 1 + seed, 6, tzinfo=timezone.utc), n_frames=4)
    return folder


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_client_exports_per_imager_arc_statistics_and_drift(minutes):
    frames = read_frames(sorted(minutes.glob("*.pgm.gz"))[0])
    metrics = Metrics(DriftMonitor(reference_histograms(reference_from_minutes(minutes)), window=50))
    answer = {
        "arc_fraction": 0.12,
        "objects": [
            {"geo": {"poleward_lat": 58.1, "equatorward_lat": 57.6, "near_horizon": False}},
            {"geo": {"poleward_lat": 59.4, "equatorward_lat": 59.0, "near_horizon": False}},
            {"geo": {"poleward_lat": 61.0, "equatorward_lat": 52.0, "near_horizon": True}},  # distorted: not counted
            {"geo": None},
        ],
    }
    port = free_port()
    with metrics.served("127.0.0.1", port):
        metrics.answered(frames[0], answer)
        values = scrape(port)
        imager = (("imager", frames[0].imager),)
        assert values[("arcscan_stream_arc_fraction", imager)] == 0.12
        assert values[("arcscan_stream_arcs_per_frame", imager)] == 4
        assert values[("arcscan_stream_boundary_latitude_degrees", tuple(sorted((*imager, ("boundary", "poleward")))))] == 59.4
        assert values[("arcscan_stream_boundary_latitude_degrees", tuple(sorted((*imager, ("boundary", "equatorward")))))] == 57.6
        for quantity in ("intensity", "arc_fraction"):
            assert np.isfinite(values[("arcscan_stream_drift_score", tuple(sorted((*imager, ("quantity", quantity)))))])
        metrics.answered(frames[1], {"arc_fraction": 0.0, "objects": []})
        values = scrape(port)
        assert np.isnan(values[("arcscan_stream_boundary_latitude_degrees", tuple(sorted((*imager, ("boundary", "poleward")))))])


def test_the_drift_score_is_small_on_training_like_skies_and_large_on_a_real_one(minutes):
    reference = reference_histograms(reference_from_minutes(minutes))
    same = DriftMonitor(reference)
    for path in sorted(minutes.glob("*.pgm.gz")):
        for frame in read_frames(path):
            same.add("synt", "intensity", sky_brightness(frame.image))
    assert same.score("synt", "intensity") < 0.05
    gako = ROOT / "data" / "real" / "valid" / "thg_l1_asf_gako_2011010617_v01.cdf"
    if not gako.is_file():
        pytest.skip(f"{gako} not present (make data)")
    real = DriftMonitor(reference)
    for frame in read_frames(gako):
        real.add("gako", "intensity", sky_brightness(frame.image))
        real.add("gako", "arc_fraction", 0.3)
    assert real.score("gako", "intensity") > 0.25 and real.score("gako", "arc_fraction") > 0.25
    assert np.isnan(real.score("nobody", "intensity"))


def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift():
    reference = histogram(np.linspace(2.0, 3.0, 400), "intensity")
    shifts = [psi(histogram(np.linspace(2.0, 3.0, 400) + shift, "intensity"), reference) for shift in (0.0, 0.25, 0.5, 1.0)]
    assert shifts[0] == pytest.approx(0.0, abs=1e-9)
    assert all(np.diff(shifts) > 0)


def test_the_shipped_drift_reference_loads():
    reference = load_reference(MONITORING / "drift_reference.json")
    assert set(reference) == {"intensity", "arc_fraction"}
    assert reference["intensity"].sum() == reference["arc_fraction"].sum() >= 100


def test_the_imager_alert_rules_pass_their_unit_tests_and_the_tests_bite(tmp_path):
    tests = yaml.safe_load((MONITORING / "alerts_test.yml").read_text())
    firing = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert set(IMAGER_ALERTS) <= firing
    result = run_promtool("test", "rules", "alerts_test.yml", cwd=MONITORING)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    alerts = (MONITORING / "alerts.yml").read_text()
    for broken in (
        alerts.replace("(min_over_time(arcscan_stream_arc_fraction[10m])) > 0.2", "(min_over_time(arcscan_stream_arc_fraction[10m])) > 0.5"),
        alerts.replace("(arcscan_stream_drift_score) > 0.25", "(arcscan_stream_drift_score) > 2.5"),
        alerts.replace("            unless\n", "            and\n", 1),
    ):
        assert broken != alerts
        (tmp_path / "alerts.yml").write_text(broken)
        shutil.copy(MONITORING / "alerts_test.yml", tmp_path / "alerts_test.yml")
        assert run_promtool("test", "rules", "alerts_test.yml", cwd=tmp_path).returncode != 0


def exported_metric_names() -> set[str]:
    names = set()
    for family in Metrics(DriftMonitor({q: np.ones(len(e) - 1) for q, e in BINS.items()})).registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_the_grafana_dashboard_queries_exported_metrics_with_valid_promql(tmp_path):
    dashboard = json.loads((MONITORING / "grafana-imagers.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert "imager" in variables
    expressions = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    assert len(expressions) >= 5
    exported = exported_metric_names()
    for expression in expressions:
        used = set(re.findall(r"\b(arcscan_[a-z_]+)", expression))
        assert used and used <= exported, f"{expression}: {used - exported} not exported by the stream client"
        assert "$imager" in expression  # every panel follows the imager variable
    for panel in panels:
        if panel["type"] != "row":
            assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["targets"]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query_{i}", "expr": e.replace("$imager", ".*")} for i, e in enumerate(expressions)]}]}
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump(rules))
    result = run_promtool("check", "rules", str(tmp_path / "dashboard_rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "broken.yml").write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": expressions[0] + ")"}]}]}))
    assert run_promtool("check", "rules", str(tmp_path / "broken.yml")).returncode != 0  # the check bites
