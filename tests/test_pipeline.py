"""The DVC pipeline end to end, in a fresh copy of the repository: pull the starter data,
`dvc repro` to a registered version (alias challenger), promote it, repro again (nothing to
do), change one parameter (only the stages that depend on it rerun)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from arcscan import mlops

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _run(command: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The repository's files (tracked and new, as in the working tree) in a new git repo,
    with a small training budget so the test runs in about a minute."""
    target = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    params = yaml.safe_load((target / "params.yaml").read_text())
    params["train"].update(epochs=1, batch_u=64)
    params["patches"].update(n_unlabeled=256, n_unlabeled_real=64)
    params["scan"]["stride"] = 16
    params["evaluate"]["overlays"] = 1
    (target / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    _run(["git", "init", "-q"], target)
    _run(git + ["add", "-A"], target)
    _run(git + ["commit", "-qm", "clone"], target)
    return target


def test_repro_registers_then_does_nothing_then_reruns_only_what_changed(clone, monkeypatch):
    _run([str(BIN / "dvc"), "pull", "--quiet", "data.dvc"], clone)
    first = _run([str(BIN / "dvc"), "repro"], clone)
    for stage in ("patches", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in first
    metrics = json.loads((clone / "reports" / "metrics.json").read_text())
    for key in ("patch_accuracy", "patch_roc_auc", "patch_f1", "pixel_iou_scan", "pixel_f1_scan", "pixel_iou_crf", "pixel_f1_crf",
                "real_pixel_iou", "real_pixel_f1", "real_arcs_found", "real_arcs_real", "real_arcfree_sky_claimed",
                "real_arcfree_sky_claimed_above_near_horizon"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["real_arc_frames"] == 4 and metrics["real_arcfree_frames"] == 23 and metrics["real_reference_arcs"] > 0
    rows = json.loads((clone / "reports" / "real_frames.json").read_text())  # the real frames on their calibrated skies
    assert {r["sky"] for r in rows} == {"profile dasc-pkr", "profile themis-gako"}
    assert (clone / "reports" / "loss.png").is_file() and (clone / "reports" / "roc.png").is_file()
    registered = json.loads((clone / "reports" / "registered.json").read_text())
    assert registered["version"] == "1"

    monkeypatch.chdir(clone)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    name = yaml.safe_load((clone / "params.yaml").read_text())["register"]["model_name"]
    assert mlops.resolve(name, "challenger").version == "1"
    run = mlops.mlflow_client().get_run(mlops.resolve(name, "challenger").run_id)
    assert run.data.tags["data_dvc_md5"] == yaml.safe_load((clone / "data.dvc").read_text())["outs"][0]["md5"]
    assert len(run.data.tags["git_commit"]) == 40 and "pixel_iou_crf" in run.data.metrics
    assert "train.eta" in run.data.params and "risk" in run.data.metrics

    promoted = _run([str(BIN / "arcscan"), "promote"], clone)
    assert "champion" in promoted and mlops.resolve(name, "champion").version == "1"

    second = _run([str(BIN / "dvc"), "repro"], clone)
    assert "Running stage" not in second
    assert mlops.resolve(name, "challenger").version == "1"

    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["crf"]["iterations"] = 3
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = _run([str(BIN / "dvc"), "repro"], clone)
    assert "Running stage 'evaluate'" in third and "Running stage 'register'" in third
    assert "Running stage 'train'" not in third and "Running stage 'patches'" not in third
    assert mlops.resolve(name, "challenger").version == "2"
    assert mlops.resolve(name, "champion").version == "1"  # promotion stays a deliberate step
