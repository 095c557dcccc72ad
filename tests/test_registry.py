"""arcscan.mlops.registry against real MLflow: a temporary SQLite store for the fast tests, real
tracking servers (SQLite, PostgreSQL) for the slow ones. Checkpoints are real random-weight
ResNet18 state_dicts from build_model/save_checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import pytest
import torch

from arcscan import mlops
from arcscan.errors import RegistryError
from arcscan.core.model import ModelConfig, build_model, load_checkpoint, save_checkpoint
from servers import mlflow_server, postgres_available, postgres_server

NAME = "arcscan-test"
METRIC = "pixel_iou_crf"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "weights.pt", build_model(), ModelConfig())


@pytest.fixture(autouse=True)
def _reset_mlflow_uris():
    """configure() sets mlflow's process-wide URIs: do not leak them into other tests."""
    yield
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _use_store(monkeypatch, uri: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    mlops.configure()


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite tracking store in tmp_path; working dir tmp_path (no ./mlruns here)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "store").mkdir()
    _use_store(monkeypatch, f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    return tmp_path


def _run(metric: float | None = None, **others: float) -> str:
    with mlflow.start_run(experiment_id=mlops.experiment_id()) as run:
        if metric is not None:
            mlflow.log_metric(METRIC, metric)
        mlflow.log_metrics(others)
    return run.info.run_id


def _register(checkpoint: Path, metric: float | None, files: list[Path] = (), onnx: Path | None = None):
    return mlops.register_version(_run(metric), NAME, checkpoint, onnx, list(files), {"source": "test"})


def test_promotion_refuses_a_challenger_better_on_synthetic_frames_but_worse_on_real_ones(store, checkpoint):
    guards = ("real_pixel_iou", "real_arcs_found")
    mlops.register_version(_run(0.50, real_pixel_iou=0.60, real_arcs_found=0.9), NAME, checkpoint, None, [], {})
    assert mlops.promote(NAME, METRIC, guards=guards).promoted
    mlops.register_version(_run(0.70, real_pixel_iou=0.40, real_arcs_found=0.9), NAME, checkpoint, None, [], {})
    refused = mlops.promote(NAME, METRIC, guards=guards)
    assert not refused.promoted and _champion() == "1"
    assert "better than @champion version 1 pixel_iou_crf=0.5000 but worse on real_pixel_iou=0.4000 < 0.6000" in refused.reason
    mlops.register_version(_run(0.70, real_pixel_iou=0.65, real_arcs_found=0.95), NAME, checkpoint, None, [], {})
    assert mlops.promote(NAME, METRIC, guards=guards).champion_after == "3"  # better on both
    mlops.register_version(_run(0.80), NAME, checkpoint, None, [], {})  # no real figures: refused too
    assert "worse on real_pixel_iou=missing < 0.6500" in mlops.promote(NAME, METRIC, guards=guards).reason
    assert mlops.promote(NAME, METRIC, guards=guards, force=True).champion_after == "4"
    mlops.register_version(_run(0.90, real_pixel_iou=0.1, real_arcs_found=0.1), NAME, checkpoint, None, [], {})
    assert mlops.promote(NAME, METRIC, guards=guards).champion_after == "5"  # the champion has no real figures to guard


def _champion() -> str:
    return mlops.resolve(NAME, "champion").version


def _tags(version: str) -> dict[str, str]:
    return mlflow.MlflowClient().get_model_version(NAME, version).tags


def _history() -> list[str]:
    return json.loads(mlflow.MlflowClient().get_registered_model(NAME).tags["champion_history"])


# ----------------------------------------------------------------------------- fast tests


def test_default_store_is_sqlite_under_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlops.tracking_uri() == f"sqlite:///{tmp_path}/mlflow/store/mlflow.db"
    assert mlops.default_backend_store_uri() == mlops.tracking_uri()
    assert (tmp_path / "mlflow" / "store").is_dir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert mlops.tracking_uri() == "http://127.0.0.1:1"


def test_tracking_server_command_is_local_single_worker(tmp_path):
    argv = mlops.tracking_server_command("sqlite:///x.db", tmp_path / "art", port=5123)
    assert argv[:4] == [sys.executable, "-m", "mlflow", "server"]
    option = dict(zip(argv[4:], argv[5:]))
    assert option["--backend-store-uri"] == "sqlite:///x.db" and option["--workers"] == "1"
    assert option["--artifacts-destination"] == (tmp_path / "art").as_uri() and "--serve-artifacts" in argv
    assert (option["--host"], option["--port"]) == ("127.0.0.1", "5123")
    assert set(option["--allowed-hosts"].split(",")) == {"localhost", "localhost:5123", "127.0.0.1", "127.0.0.1:5123"}
    extra = mlops.tracking_server_command("sqlite:///x.db", tmp_path, "0.0.0.0", 5000, ("mlflow.arcscan",))
    assert "mlflow.arcscan:5000" in extra[extra.index("--allowed-hosts") + 1].split(",")
    env = mlops.tracking_server_env({"MLFLOW_TRACKING_URI": "http://x", "PATH": "/bin"})
    assert env == {"PATH": "/bin", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def test_experiment_artifacts_next_to_sqlite_store(store):
    experiment = mlflow.MlflowClient().get_experiment(mlops.experiment_id())
    assert experiment.name == "arcscan"
    assert experiment.artifact_location == (store / "store" / "artifacts").as_uri()
    assert mlops.experiment_id() == experiment.experiment_id  # get, not create again
    _run(0.5)
    assert not (store / "mlruns").exists()


def test_register_versions_challenger_complete_and_loadable(store, checkpoint):
    params = store / "params.yaml"
    params.write_text("register:\n  model_name: arcscan-test\n")
    onnx = store / "export.onnx"
    onnx.write_bytes(b"not really onnx")
    first = _register(checkpoint, 0.5, [params], onnx)
    assert first.version == "1"
    folder = first.tags["artifacts"]
    assert folder.startswith("model-") and first.tags["complete"] == "true"
    assert first.tags["checkpoint"] == f"{folder}/model.pt" and first.tags["onnx"] == f"{folder}/model.onnx"
    assert first.tags["source"] == "test" and first.source.endswith(f"{first.run_id}/artifacts/{folder}")
    assert sorted(p.name for p in Path(first.source.removeprefix("file://")).iterdir()) == [
        "model.onnx", "model.pt", "params.yaml"]
    assert mlops.resolve(NAME, "challenger").version == "1"

    second = _register(checkpoint, 0.6)
    assert second.version == "2" and mlops.resolve(NAME, "challenger").version == "2"

    path, version = mlops.download_checkpoint(NAME, "challenger", store / "download")
    assert version.version == "2" and path.name == "model.pt"
    assert (path.parent / "params.yaml").is_file() is False  # version 2 was registered without extra files
    assert torch.load(path, weights_only=True)["model_args"] == {"patch_size": 32, "in_channels": 1, "stem_stride": 2}
    model = load_checkpoint(path).model
    expected = load_checkpoint(checkpoint).model
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), expected.state_dict().values()))
    with pytest.raises(RegistryError, match="no alias @champion"):
        mlops.download_checkpoint(NAME, "champion", store / "download")


def test_register_refuses_a_broken_checkpoint_and_moves_no_alias(store, checkpoint):
    _register(checkpoint, 0.5)
    broken = store / "broken.pt"
    broken.write_bytes(b"garbage")
    with pytest.raises(RegistryError, match="not a loadable arcscan checkpoint"):
        _register(broken, 0.9)
    with pytest.raises(RegistryError, match="set by register_version"):
        mlops.register_version(_run(0.9), NAME, checkpoint, None, [], {"complete": "true"})
    assert mlops.resolve(NAME, "challenger").version == "1"


def test_incomplete_version_gets_no_alias(store, checkpoint, monkeypatch):
    _register(checkpoint, 0.5)

    def fail(*args, **kwargs):
        raise RegistryError("simulated: download failed")

    monkeypatch.setattr(mlops.registry, "_fetch_checkpoint", fail)
    with pytest.raises(RegistryError, match="simulated"):
        _register(checkpoint, 0.9)
    client = mlflow.MlflowClient()
    assert client.get_model_version(NAME, "2").tags["complete"] == "false"
    assert mlops.resolve(NAME, "challenger").version == "1"
    client.set_registered_model_alias(NAME, "challenger", "2")  # by hand: promote must refuse
    with pytest.raises(RegistryError, match="not complete"):
        mlops.promote(NAME, METRIC)
    with pytest.raises(RegistryError, match="not complete"):
        mlops.download_checkpoint(NAME, "challenger", store / "download")


def test_promote_refuse_force_rollback_and_tags(store, checkpoint):
    with pytest.raises(RegistryError, match="no registered model"):
        mlops.promote(NAME, METRIC)
    _register(checkpoint, 0.50)

    first = mlops.promote(NAME, METRIC)
    assert first.promoted and first.champion_before is None and first.champion_after == "1"
    assert _champion() == "1" and _history() == ["1"]
    tags = _tags("1")
    assert tags["promotion"] == "first" and tags["promoted_from"] == "none" and "promoted_at" in tags
    again = mlops.promote(NAME, METRIC)
    assert not again.promoted and "already" in again.reason

    _register(checkpoint, 0.40)  # worse
    worse = mlops.promote(NAME, METRIC)
    assert not worse.promoted and "not better" in worse.reason
    assert (worse.challenger, worse.challenger_value, worse.champion_value) == ("2", 0.40, 0.50)
    assert _champion() == "1" and "promoted_at" not in _tags("2")

    _register(checkpoint, 0.70)  # better
    better = mlops.promote(NAME, METRIC)
    assert better.promoted and (better.champion_before, better.champion_after) == ("1", "3")
    assert _champion() == "3" and _history() == ["1", "3"]
    assert _tags("3")["promotion"] == "better" and _tags("3")["promoted_from"] == "1"
    assert "demoted_at" in _tags("1") and _tags("1")["demoted_by"] == "3"

    _register(checkpoint, 0.10)  # much worse, forced
    forced = mlops.promote(NAME, METRIC, force=True)
    assert forced.promoted and _champion() == "4" and _tags("4")["promotion"] == "forced"
    assert _history() == ["1", "3", "4"]

    back = mlops.rollback(NAME)
    assert back.promoted and (back.champion_before, back.champion_after) == ("4", "3")
    assert _champion() == "3" and _history() == ["1", "3"]
    assert _tags("3")["rolled_back_from"] == "4" and "rolled_back_at" in _tags("3")
    assert "demoted_at" in _tags("4")
    mlops.rollback(NAME)
    assert _champion() == "1" and _history() == ["1"]
    with pytest.raises(RegistryError, match="no previous @champion"):
        mlops.rollback(NAME)
    assert _champion() == "1"

    # lower is better: challenger 4 (0.10) beats champion 1 (0.50)
    assert mlops.promote(NAME, METRIC, higher_is_better=False).champion_after == "4"


def test_rollback_without_history_and_missing_metric(store, checkpoint):
    _register(checkpoint, 0.5)
    with pytest.raises(RegistryError, match="no previous @champion"):
        mlops.rollback(NAME)
    mlops.promote(NAME, METRIC)
    with pytest.raises(RegistryError, match="no previous @champion"):
        mlops.rollback(NAME)
    _register(checkpoint, None)  # its run never logged the metric
    with pytest.raises(RegistryError, match="no metric 'pixel_iou_crf'"):
        mlops.promote(NAME, METRIC)
    with pytest.raises(RegistryError, match="no metric"):
        mlops.promote(NAME, METRIC, force=True)
    assert _champion() == "1"


def test_crash_before_alias_move_keeps_champion_and_history(store, checkpoint, monkeypatch):
    for value in (0.5, 0.6):
        _register(checkpoint, value)
        mlops.promote(NAME, METRIC)
    _register(checkpoint, 0.9)

    class Crash(BaseException):
        pass

    def crash(self, name, alias, version):
        raise Crash("simulated crash just before the alias move")

    with monkeypatch.context() as patch:
        patch.setattr(mlflow.MlflowClient, "set_registered_model_alias", crash)
        with pytest.raises(Crash):
            mlops.promote(NAME, METRIC)  # tags and history written, alias not moved
        with pytest.raises(Crash):
            mlops.rollback(NAME)
    assert _champion() == "2"  # the alias never moved
    assert mlops.rollback(NAME).champion_after == "1"  # history repaired: 2 was on top
    assert mlops.promote(NAME, METRIC).champion_after == "3"
    assert _history() == ["1", "3"]


# ----------------------------------------------------------------------------- real servers


def _register_and_promote_through(url: str, monkeypatch, checkpoint: Path, tmp_path: Path) -> None:
    _use_store(monkeypatch, url)
    assert mlops.tracking_uri() == url
    first = _register(checkpoint, 0.5)
    second = _register(checkpoint, 0.8)
    assert (first.version, second.version) == ("1", "2")
    assert second.source.startswith("mlflow-artifacts:/") and second.tags["complete"] == "true"
    assert mlops.promote(NAME, METRIC).champion_after == "2"  # first promotion
    _register(checkpoint, 0.6)
    assert not mlops.promote(NAME, METRIC).promoted
    path, version = mlops.download_checkpoint(NAME, "champion", tmp_path / "download")
    assert version.version == "2"
    load_checkpoint(path)
    assert mlops.promote(NAME, METRIC, force=True).champion_after == "3"
    assert mlops.rollback(NAME).champion_after == "2"


@pytest.mark.slow
def test_sqlite_tracking_server(tmp_path, monkeypatch, checkpoint):
    monkeypatch.chdir(tmp_path)
    backend = f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}"
    (tmp_path / "server").mkdir()
    with mlflow_server(backend, tmp_path / "server" / "artifacts") as url:
        _register_and_promote_through(url, monkeypatch, checkpoint, tmp_path)
    assert list((tmp_path / "server" / "artifacts").rglob("model.pt"))


@pytest.mark.slow
def test_postgres_tracking_server(tmp_path, monkeypatch, checkpoint):
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    with postgres_server() as database, mlflow_server(database, tmp_path / "artifacts") as url:
        assert database.startswith("postgresql+psycopg2://")
        _register_and_promote_through(url, monkeypatch, checkpoint, tmp_path)
    assert list((tmp_path / "artifacts").rglob("model.pt"))


def test_reregistering_a_run_never_changes_an_earlier_version(store, checkpoint):
    """Evaluate/register rerun for the same training run (e.g. new CRF settings) must leave
    the files of the version registered before untouched."""
    run_id = _run(0.5)
    params = store / "params.yaml"
    params.write_text("crf:\n  iterations: 5\n")
    first = mlops.register_version(run_id, NAME, checkpoint, None, [params], {})
    params.write_text("crf:\n  iterations: 10\n")
    second = mlops.register_version(run_id, NAME, checkpoint, None, [params], {})
    assert first.tags["artifacts"] != second.tags["artifacts"]
    path, _ = mlops.download_checkpoint(NAME, "challenger", store / "second")
    assert "iterations: 10" in (path.parent / "params.yaml").read_text()
    first_files = Path(first.source.removeprefix("file://"))
    assert "iterations: 5" in (first_files / "params.yaml").read_text()


def test_each_version_keeps_the_metrics_it_was_registered_with(store, checkpoint):
    """Re-evaluating a run (e.g. with another scan stride) and registering it again must
    compare the new evaluation with the champion's own, not the run's latest value."""
    run_id = _run(0.5)
    first = mlops.register_version(run_id, NAME, checkpoint, None, [], {})
    mlops.promote(NAME, METRIC)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metric(METRIC, 0.6)
    second = mlops.register_version(run_id, NAME, checkpoint, None, [], {})
    assert first.tags[f"metric.{METRIC}"] == "0.5" and second.tags[f"metric.{METRIC}"] == "0.6"
    result = mlops.promote(NAME, METRIC)
    assert result.promoted and (result.champion_value, result.challenger_value) == (0.5, 0.6)
