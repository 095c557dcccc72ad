"""Faults around the registry, against a real MLflow tracking server: a client killed at each
step of a promotion and of a registration (``servers.CrashProxy``), the server stopped during
training, and MLflow's basic-auth app. The invariant after every fault: each alias points at a
complete version whose checkpoint downloads and loads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from itertools import count
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
import torch
import yaml
from mlflow.tracking import MlflowClient

from arcscan import mlops
from arcscan.errors import RegistryError
from arcscan.core.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
from arcscan.core.patches import PatchSet
from servers import CrashProxy, free_port, mlflow_server

ROOT = Path(__file__).resolve().parents[1]
NAME = "arcscan-faults"
METRIC = "pixel_iou_crf"
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _workdir(tmp_path, monkeypatch):
    """Run in tmp_path with a params.yaml naming the test model; never leak mlflow's URIs."""
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["register"] = {"model_name": NAME, "metric": METRIC}
    params["train"].update(epochs=4, threads=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    yield
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "weights.pt", build_model(), ModelConfig())


def _store(tmp_path: Path) -> tuple[str, Path]:
    (tmp_path / "server").mkdir(exist_ok=True)
    return f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}", tmp_path / "server" / "artifacts"


def _use(monkeypatch, url: str, user: str | None = None, password: str | None = None) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    for key, value in (("MLFLOW_TRACKING_USERNAME", user), ("MLFLOW_TRACKING_PASSWORD", password)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    mlops.configure()


def _register(checkpoint: Path, metric: float) -> str:
    with mlflow.start_run(experiment_id=mlops.experiment_id()) as run:
        mlflow.log_metric(METRIC, metric)
    return mlops.register_version(run.info.run_id, NAME, checkpoint, None, [], {}).version


def _aliases() -> dict[str, str]:
    return {alias: str(version) for alias, version in MlflowClient().get_registered_model(NAME).aliases.items()}


def assert_aliases_complete_and_loadable(folder: Path) -> dict[str, str]:
    """Every alias points at a complete=true version whose checkpoint downloads and loads."""
    aliases = _aliases()
    for alias, version in aliases.items():
        path, mv = mlops.download_checkpoint(NAME, alias, folder / f"{alias}-{version}-{time.monotonic_ns()}")
        assert mv.tags.get("complete") == "true", (alias, version, mv.tags)
        load_checkpoint(path)
    return aliases


def _client_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return env | {"MLFLOW_TRACKING_URI": url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", **extra}


def crash_at_every_step(proxy: CrashProxy, command: list[str], check) -> list[str]:
    """Run ``command`` through ``proxy`` again and again, killed before its 1st, 2nd, ...
    request reaches the server, calling ``check()`` after each kill, until a run gets through;
    return the requests it died at (all of a whole run's requests, in order). A kill after the
    server answered request k leaves the state a kill before request k + 1 does, so this covers
    every crash point but the one after the last request (:func:`crash_after_the_last_step`)."""
    died_at = []
    for step in count(1):
        process = subprocess.Popen(command, env=_client_env(proxy.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proxy.arm(process.pid, step)
        out, err = process.communicate(timeout=180)
        if proxy.killed_at is None:
            assert process.returncode == 0, out + err
            return died_at
        assert process.returncode == -signal.SIGKILL, out + err
        died_at.append(proxy.killed_at)
        check()
    raise AssertionError("unreachable")


def crash_after_the_last_step(proxy: CrashProxy, command: list[str], steps: int) -> str:
    """Kill ``command`` once the server has answered its last (``steps``-th) request."""
    process = subprocess.Popen(command, env=_client_env(proxy.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proxy.arm(process.pid, steps, after_answer=True)
    out, err = process.communicate(timeout=180)
    assert process.returncode == -signal.SIGKILL, out + err
    return proxy.killed_at


def test_a_promotion_killed_at_any_step_leaves_the_champion_complete(tmp_path, monkeypatch, checkpoint):
    backend, artifacts = _store(tmp_path)
    with mlflow_server(backend, artifacts) as url, CrashProxy(url) as proxy:
        _use(monkeypatch, url)
        assert _register(checkpoint, 0.5) == "1"
        assert mlops.promote(NAME, METRIC).champion_after == "1"
        assert _register(checkpoint, 0.8) == "2"

        def check() -> None:
            assert assert_aliases_complete_and_loadable(tmp_path)["champion"] in ("1", "2")

        promote = [sys.executable, "-m", "arcscan", "promote"]
        died_at = crash_at_every_step(proxy, promote, check)
        assert len(died_at) >= 8 and died_at[-1].endswith("registered-models/alias"), died_at  # the last write moves the alias
        print(f"\npromote killed before each of its {len(died_at)} requests and after the last: champion always complete")
        assert _aliases() == {"champion": "2", "challenger": "2"}
        assert mlops.rollback(NAME).champion_after == "1"  # history intact: 2 on top of 1

        assert crash_after_the_last_step(proxy, promote, len(died_at)).startswith("POST /api/2.0/mlflow/registered-models/alias")
        assert _aliases()["champion"] == "2"
        check()
        assert mlops.rollback(NAME).champion_after == "1"
        assert mlops.promote(NAME, METRIC).champion_after == "2"


REGISTER = (
    "import sys; from pathlib import Path; from arcscan import mlops; mlops.configure(); "
    "mlops.register_version(sys.argv[1], sys.argv[2], Path(sys.argv[3]), None, [], {})"
)


def test_a_registration_killed_at_any_step_never_aliases_an_incomplete_version(tmp_path, monkeypatch, checkpoint):
    backend, artifacts = _store(tmp_path)
    with mlflow_server(backend, artifacts) as url, CrashProxy(url) as proxy:
        _use(monkeypatch, url)
        assert _register(checkpoint, 0.5) == "1"
        with mlflow.start_run(experiment_id=mlops.experiment_id()) as run:
            mlflow.log_metric(METRIC, 0.9)

        command = [sys.executable, "-c", REGISTER, run.info.run_id, NAME, str(checkpoint)]
        died_at = crash_at_every_step(proxy, command, check=lambda: assert_aliases_complete_and_loadable(tmp_path))
        assert any("model-versions/create" in request for request in died_at), died_at
        client = MlflowClient()
        versions = client.search_model_versions(f"name = '{NAME}'")
        latest = max(versions, key=lambda mv: int(mv.version))
        assert _aliases()["challenger"] == latest.version and latest.tags["complete"] == "true"
        left_incomplete = [mv.version for mv in versions if mv.tags.get("complete") != "true"]
        assert left_incomplete and not set(left_incomplete) & set(_aliases().values())
        print(f"\nregistration killed before each of its {len(died_at)} requests: {len(left_incomplete)} versions left without complete=true, none aliased")
        client.set_registered_model_alias(NAME, "challenger", left_incomplete[0])  # by hand, outside arcscan
        with pytest.raises(RegistryError, match="not complete=true"):
            mlops.promote(NAME, METRIC)


# ----------------------------------------------------------------------------- server down


def _tiny_patches(path: Path) -> Path:
    """40 arc, 40 other and 200 unlabeled random 32x32 patches (training mechanics only)."""
    rng = np.random.default_rng(0)
    labels = np.array([1] * 40 + [0] * 40 + [-1] * 200, np.int8)
    n = len(labels)
    images = (rng.random((n, 32, 32)) * (0.5 + 0.5 * (labels == 1))[:, None, None]).astype(np.float32)
    zeros = np.zeros(n, np.int32)
    return PatchSet(images, labels, np.full(n, "synthetic.pgm.gz"), zeros, zeros, zeros, np.full(n, -1, np.int8)).save(path)


def _start_training(url: str, **env: str) -> subprocess.Popen:
    patches = _tiny_patches(Path("patches") / "train.npz")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "training" / "train.py"), str(patches), "models"],
        env=_client_env(url, **env) | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen = ""
    while "epoch=1" not in seen:  # the progress line of the first epoch: the run is under way
        line = process.stderr.readline()
        assert line, seen + process.stdout.read()
        seen += line
    return process


def test_training_rides_out_a_tracking_server_restart(tmp_path):
    backend, artifacts = _store(tmp_path)
    port = free_port()
    with mlflow_server(backend, artifacts, port=port) as url:
        process = _start_training(url, MLFLOW_HTTP_REQUEST_MAX_RETRIES="7", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1")
    time.sleep(2)  # down: the next epoch's metrics wait in MLflow's retries
    with mlflow_server(backend, artifacts, port=port) as url:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, out + err
        assert Path("models/model.pt").is_file()
        run = MlflowClient(url).search_runs([MlflowClient(url).get_experiment_by_name("arcscan").experiment_id])[0]
        assert run.info.status == "FINISHED"
        assert len(MlflowClient(url).get_metric_history(run.info.run_id, "risk")) == 4  # every epoch logged once


def test_training_fails_clearly_when_the_tracking_server_stays_down(tmp_path):
    backend, artifacts = _store(tmp_path)
    with mlflow_server(backend, artifacts) as url:
        process = _start_training(url, MLFLOW_HTTP_REQUEST_MAX_RETRIES="1", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="0")
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1
    assert f"train: MLflow tracking server {url} unreachable" in err and "Traceback" not in err
    assert not Path("models/model.pt").exists()  # nothing for the register stage to pick up


# ----------------------------------------------------------------------------- basic auth

ADMIN = ("admin", "admin-pw-for-tests")
SECRETS = {"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1], "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key-for-tests"}


def _cli(*args: str, url: str, user: tuple[str, str] | None) -> subprocess.CompletedProcess:
    credentials = {"MLFLOW_TRACKING_USERNAME": user[0], "MLFLOW_TRACKING_PASSWORD": user[1]} if user else {}
    return subprocess.run([sys.executable, "-m", "arcscan", *args], env=_client_env(url, **credentials), capture_output=True, text=True, timeout=120)


def test_basic_auth_server_checks_credentials_and_permissions(tmp_path, monkeypatch, checkpoint):
    backend, artifacts = _store(tmp_path)
    auth_config = mlops.write_auth_config(tmp_path / "server" / "basic_auth.ini", f"sqlite:///{tmp_path / 'server' / 'auth.db'}")
    with mlflow_server(backend, artifacts, auth_config=auth_config, env=SECRETS) as url:
        assert requests.get(f"{url}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=30).status_code == 401
        _use(monkeypatch, url, *ADMIN)
        assert _register(checkpoint, 0.5) == "1"
        assert mlops.promote(NAME, METRIC).champion_after == "1"
        assert _register(checkpoint, 0.8) == "2"
        reader = ("reader", "reader-password-1")
        created = requests.post(f"{url}/api/2.0/mlflow/users/create", json=dict(zip(("username", "password"), reader)), auth=ADMIN, timeout=30)
        assert created.status_code == 200, created.text

        anonymous = _cli("promote", url=url, user=None)
        assert anonymous.returncode == 2 and "wants credentials: set MLFLOW_TRACKING_USERNAME" in anonymous.stderr
        wrong = _cli("promote", url=url, user=(reader[0], "not-the-password"))
        assert wrong.returncode == 2 and "wants credentials" in wrong.stderr
        refused = _cli("promote", url=url, user=reader)
        assert refused.returncode == 2 and "user 'reader' lacks the permission" in refused.stderr, refused.stderr
        assert _aliases()["champion"] == "1"

        _use(monkeypatch, url, *reader)  # a reader downloads the champion (what serving needs)
        path, version = mlops.download_checkpoint(NAME, "champion", tmp_path / "as-reader")
        assert version.version == "1" and load_checkpoint(path)

        admin = _cli("promote", url=url, user=ADMIN)
        assert admin.returncode == 0 and "promoted (better): version 2" in admin.stdout, admin.stderr
