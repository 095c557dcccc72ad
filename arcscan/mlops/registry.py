"""MLflow tracking and model registry for arcscan: register, promote, roll back, resolve.

Scheme (MLflow 3 aliases and tags; stages are deprecated):

* Every version's ``source`` is an artifact folder ``model-<content hash>`` of its training
  run, holding ``model.pt`` (a ``save_checkpoint`` state_dict, loadable with
  ``weights_only=True``), ``model.onnx`` and extra files such as ``params.yaml`` (the scan and
  CRF settings served with it). The folder name comes from the files' contents, so
  registering the same run again with other settings never overwrites an earlier version. Not ``mlflow.pytorch.log_model``:
  its default pt2 format fixes input shapes and loads back as a ``GraphModule``.
* A version is tagged ``complete=true`` only after it is READY and its checkpoint has been
  downloaded from the store and loaded; only complete versions ever get an alias.
* Alias ``challenger``: the latest complete registered version. Alias ``champion``: the
  version served. Moves are recorded as version tags (``promoted_at``, ``promoted_from``,
  ``promotion``, ``demoted_at``, ``rolled_back_at``, ``rolled_back_from``) and in the
  registered-model tag ``champion_history``: a JSON list of versions, a stack whose last
  entry is the champion (promote pushes, rollback pops).
* Crash safety: tags and history are written first and the alias move is the last call, so
  the alias only ever points at a complete version. ``champion_history_before`` keeps the
  list as it was before the last change: if a crash came between the history write and the
  alias move, the history's last entry differs from the alias and the next operation
  restores the previous list (see ``_history``).

Concurrent promotions of the same model are not guarded against: promote from one place (CI
or an operator).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import requests
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from arcscan.errors import RegistryError
from arcscan.core.model import load_checkpoint

CHAMPION = "champion"
CHALLENGER = "challenger"
CHECKPOINT_NAME = "model.pt"
ONNX_NAME = "model.onnx"
HISTORY_TAG = "champion_history"
HISTORY_BEFORE_TAG = "champion_history_before"
HISTORY_MAX = 200  # entries kept; the registry's tag column holds 5000 characters
READY_TIMEOUT_S = 120.0
RESERVED_TAGS = frozenset({"complete", "artifacts", "checkpoint", "onnx", "files"})
METRIC_TAG_PREFIX = "metric."  # a version's snapshot of its run's metrics at registration  # set by register_version


@dataclass(frozen=True)
class PromotionResult:
    """What ``promote`` or ``rollback`` did. For a rollback, ``challenger`` is the version
    the champion went back to and the metric values are None."""

    promoted: bool
    reason: str
    challenger: str
    champion_before: str | None
    champion_after: str | None
    challenger_value: float | None = None
    champion_value: float | None = None
    metric: str | None = None


# ----------------------------------------------------------------------------- tracking store


def default_backend_store_uri() -> str:
    """The embedded SQLite store ``sqlite:///<cwd>/mlflow/store/mlflow.db`` (folder created)."""
    folder = Path.cwd() / "mlflow" / "store"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_backend_store_uri()


def configure() -> str:
    """Point mlflow's tracking and registry URIs at ``tracking_uri()``; return it."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def _client() -> MlflowClient:
    uri = tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _local_artifact_root(uri: str) -> str | None:
    """For a SQLite store, the ``artifacts`` folder next to the database file (a file URI);
    None (the server's or mlflow's default) for anything else."""
    if not uri.startswith("sqlite:///") or ":memory:" in uri:
        return None
    database = Path(uri[len("sqlite:///"):].split("?")[0]).absolute()
    folder = database.parent / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder.as_uri()


def experiment_id(name: str = "arcscan") -> str:
    """The id of experiment ``name``, created if missing (artifacts next to a SQLite store,
    so nothing goes to ./mlruns)."""
    client = _client()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=_local_artifact_root(tracking_uri()))
        except MlflowException as error:  # created meanwhile by someone else
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise RegistryError(f"cannot create experiment {name!r}: {error.message}") from error
    if experiment.lifecycle_stage != "active":
        raise RegistryError(f"experiment {name!r} is deleted; restore it or pick another name")
    return experiment.experiment_id


# ----------------------------------------------------------------------------- registration


def _stage(checkpoint: Path, onnx: Path | None, files: list[Path], folder: Path) -> None:
    """Copy the files to upload into ``folder`` under their artifact names."""
    targets = {CHECKPOINT_NAME: checkpoint}
    if onnx is not None:
        targets[ONNX_NAME] = onnx
    for path in files:
        if path.name in targets:
            raise RegistryError(f"two artifacts would be named {path.name}")
        targets[path.name] = path
    for name, path in targets.items():
        if not Path(path).is_file():
            raise RegistryError(f"artifact file not found: {path}")
        shutil.copyfile(path, folder / name)


def _get_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    """The version with ``version`` as a string whatever the store (SQL stores give ints)."""
    return ModelVersion.from_proto(client.get_model_version(name, str(version)).to_proto())


def _wait_ready(client: MlflowClient, name: str, version: str, timeout_s: float = READY_TIMEOUT_S) -> ModelVersion:
    deadline = time.monotonic() + timeout_s
    while True:
        mv = _get_version(client, name, version)
        if mv.status == "READY":
            return mv
        if mv.status == "FAILED_REGISTRATION":
            raise RegistryError(f"{name} version {version} failed registration: {mv.status_message}")
        if time.monotonic() > deadline:
            raise RegistryError(f"{name} version {version} not READY after {timeout_s:.0f} s ({mv.status})")
        time.sleep(0.5)


def _content_folder(staging: Path) -> str:
    """``model-`` and the first 12 hex digits of the SHA-256 of the staged files."""
    digest = hashlib.sha256()
    for path in sorted(staging.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"model-{digest.hexdigest()[:12]}"


def _fetch_checkpoint(client: MlflowClient, mv: ModelVersion, dst: Path) -> Path:
    """Download the version's artifact folder into ``dst`` and load its checkpoint (weights
    only); return the checkpoint's path (the version's other files lie beside it)."""
    dst.mkdir(parents=True, exist_ok=True)
    artifact = mv.tags.get("checkpoint", f"{mv.tags.get('artifacts', 'model')}/{CHECKPOINT_NAME}")
    try:
        folder = Path(client.download_artifacts(mv.run_id, str(Path(artifact).parent), str(dst)))
        path = folder / Path(artifact).name
        load_checkpoint(path)
    except Exception as error:  # any failure here means: not a usable version
        raise RegistryError(f"{mv.name} version {mv.version}: checkpoint {artifact} does not download and load: {error}") from error
    return path


def register_version(
    run_id: str,
    model_name: str,
    checkpoint: Path,
    onnx: Path | None,
    files: list[Path],
    tags: dict[str, str],
) -> ModelVersion:
    """Log the checkpoint, ONNX file and extra files under ``model-<hash>/`` of run ``run_id``,
    register them as a new version of ``model_name``, verify the stored checkpoint loads,
    then tag it ``complete=true`` and point ``challenger`` at it."""
    if reserved := RESERVED_TAGS & set(tags):
        raise RegistryError(f"tags {sorted(reserved)} are set by register_version itself")
    try:
        load_checkpoint(checkpoint)  # fail before uploading anything
    except Exception as error:
        raise RegistryError(f"{checkpoint} is not a loadable arcscan checkpoint: {error}") from error
    client = _client()
    with tempfile.TemporaryDirectory(prefix="arcscan-register-") as tmp:
        staging = Path(tmp) / "model"
        staging.mkdir()
        _stage(Path(checkpoint), None if onnx is None else Path(onnx), [Path(f) for f in files], staging)
        folder = _content_folder(staging)
        client.log_artifacts(run_id, str(staging), artifact_path=folder)

    try:
        client.create_registered_model(model_name, description="arcscan auroral arc patch classifier (PNU ResNet18)")
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version_tags = {str(k): str(v) for k, v in tags.items()}
    version_tags.update({"artifacts": folder, "checkpoint": f"{folder}/{CHECKPOINT_NAME}", "files": ",".join(sorted(Path(f).name for f in files))})
    if onnx is not None:
        version_tags["onnx"] = f"{folder}/{ONNX_NAME}"
    run = client.get_run(run_id)
    # The run's metrics as they are now belong to this version: a later evaluation of the same
    # run (other scan/CRF settings, registered as another version) must not change them.
    version_tags.update({f"{METRIC_TAG_PREFIX}{k}": repr(float(v)) for k, v in run.data.metrics.items()})
    source = f"{run.info.artifact_uri.rstrip('/')}/{folder}"
    mv = client.create_model_version(model_name, source=source, run_id=run_id, tags=version_tags)
    mv = _wait_ready(client, model_name, mv.version)

    with tempfile.TemporaryDirectory(prefix="arcscan-verify-") as tmp:
        try:
            _fetch_checkpoint(client, mv, Path(tmp))
        except RegistryError as error:
            client.set_model_version_tag(model_name, mv.version, "complete", "false")
            raise error
    client.set_model_version_tag(model_name, mv.version, "complete", "true")
    client.set_registered_model_alias(model_name, CHALLENGER, mv.version)  # last step
    return _get_version(client, model_name, mv.version)


# ----------------------------------------------------------------------------- promotion


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _registered_model(client: MlflowClient, name: str) -> tuple[RegisteredModel, dict[str, str]]:
    """The registered model and its aliases (alias -> version string)."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise RegistryError(f"no registered model {name!r} in {_redact(tracking_uri())}") from error
    return model, {alias: str(version) for alias, version in model.aliases.items()}


def _history(model: RegisteredModel, aliases: dict[str, str]) -> list[str]:
    """The champion stack, repaired if the last change did not reach the alias (crash)."""
    history = json.loads(model.tags.get(HISTORY_TAG, "[]"))
    before = json.loads(model.tags.get(HISTORY_BEFORE_TAG, "[]"))
    champion = aliases.get(CHAMPION)
    if champion is None:
        return []
    if history and history[-1] == champion:
        return history
    if before and before[-1] == champion:  # interrupted before the alias moved
        return before
    return history + [champion]  # alias moved outside arcscan: take it as is


def _write_history(client: MlflowClient, name: str, before: list[str], after: list[str]) -> None:
    client.set_registered_model_tag(name, HISTORY_BEFORE_TAG, json.dumps(before[-HISTORY_MAX:]))
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(after[-HISTORY_MAX:]))


def _complete(mv: ModelVersion) -> bool:
    return mv.tags.get("complete") == "true"


def _metric(client: MlflowClient, mv: ModelVersion, metric: str) -> float | None:
    """The version's own value (tag ``metric.<name>``, its run's metrics when it was
    registered), else its run's latest value."""
    tagged = mv.tags.get(f"{METRIC_TAG_PREFIX}{metric}")
    if tagged is not None:
        value = float(tagged)
    else:
        value = client.get_run(mv.run_id).data.metrics.get(metric) if mv.run_id else None
    return None if value is None or math.isnan(value) else float(value)


def promote(model_name: str, metric: str, higher_is_better: bool = True, force: bool = False) -> PromotionResult:
    """Point ``champion`` at ``challenger`` if there is no champion, the challenger's run
    metric is strictly better, or ``force``; otherwise leave it and say why."""
    client = _client()
    model, aliases = _registered_model(client, model_name)
    if CHALLENGER not in aliases:
        raise RegistryError(f"{model_name} has no @{CHALLENGER}: register a version first")
    challenger = _get_version(client, model_name, aliases[CHALLENGER])
    if not _complete(challenger):
        raise RegistryError(f"{model_name} version {challenger.version} (@{CHALLENGER}) is not complete=true")
    value = _metric(client, challenger, metric)
    if value is None:
        raise RegistryError(f"{model_name} version {challenger.version} (@{CHALLENGER}): its run has no metric {metric!r}")

    history = _history(model, aliases)
    champion_version = aliases.get(CHAMPION)
    result = dict(challenger=challenger.version, champion_before=champion_version, challenger_value=value, metric=metric)
    if champion_version == challenger.version:
        reason = f"version {challenger.version} is already @{CHAMPION}"
        return PromotionResult(False, reason, champion_after=champion_version, champion_value=value, **result)

    champion_value = None
    if champion_version is None:
        how = "first"
    else:
        champion_value = _metric(client, _get_version(client, model_name, champion_version), metric)
        better = champion_value is not None and (value > champion_value if higher_is_better else value < champion_value)
        how = "better" if better else "forced" if force else None
        if champion_value is None and how is None:
            raise RegistryError(f"@{CHAMPION} version {champion_version} has no metric {metric!r} to compare with: use force")
        if how is None:
            reason = (f"not promoted: version {challenger.version} {metric}={value:.4f} is not better than "
                      f"@{CHAMPION} version {champion_version} {metric}={champion_value:.4f}")
            return PromotionResult(False, reason, champion_after=champion_version, champion_value=champion_value, **result)

    stamp = _now()
    client.set_model_version_tag(model_name, challenger.version, "promoted_at", stamp)
    client.set_model_version_tag(model_name, challenger.version, "promoted_from", champion_version or "none")
    client.set_model_version_tag(model_name, challenger.version, "promotion", how)
    client.set_model_version_tag(model_name, challenger.version, "promotion_metric", f"{metric}={value}")
    if champion_version is not None:
        client.set_model_version_tag(model_name, champion_version, "demoted_at", stamp)
        client.set_model_version_tag(model_name, champion_version, "demoted_by", challenger.version)
    _write_history(client, model_name, history, history + [challenger.version])
    client.set_registered_model_alias(model_name, CHAMPION, challenger.version)  # last step

    previous = f"version {champion_version} ({metric}={champion_value})" if champion_version else "none"
    reason = f"promoted ({how}): version {challenger.version} ({metric}={value}) is @{CHAMPION}; before: {previous}"
    return PromotionResult(True, reason, champion_after=challenger.version, champion_value=champion_value, **result)


def rollback(model_name: str) -> PromotionResult:
    """Point ``champion`` back at the previous champion of the history."""
    client = _client()
    history = _history(*_registered_model(client, model_name))
    if len(history) < 2:
        raise RegistryError(f"{model_name}: no previous @{CHAMPION} to roll back to (history {history})")
    current, target = history[-1], history[-2]
    if not _complete(_get_version(client, model_name, target)):
        raise RegistryError(f"{model_name} version {target} is not complete=true; not rolling back to it")

    stamp = _now()
    client.set_model_version_tag(model_name, target, "rolled_back_at", stamp)
    client.set_model_version_tag(model_name, target, "rolled_back_from", current)
    client.set_model_version_tag(model_name, current, "demoted_at", stamp)
    client.set_model_version_tag(model_name, current, "demoted_by", f"rollback to {target}")
    _write_history(client, model_name, history, history[:-1])
    client.set_registered_model_alias(model_name, CHAMPION, target)  # last step
    reason = f"rolled back: @{CHAMPION} is version {target} again (was {current})"
    return PromotionResult(True, reason, challenger=target, champion_before=current, champion_after=target)


# ----------------------------------------------------------------------------- consumers


def resolve(model_name: str, alias: str) -> ModelVersion:
    """The version ``model_name@alias`` (RegistryError if there is none)."""
    client = _client()
    _, aliases = _registered_model(client, model_name)
    if alias not in aliases:
        raise RegistryError(f"{model_name} has no alias @{alias} (aliases: {sorted(aliases) or 'none'})")
    return _get_version(client, model_name, aliases[alias])


def download_checkpoint(model_name: str, alias: str, dst: Path) -> tuple[Path, ModelVersion]:
    """Download the artifact folder of ``model_name@alias`` (checkpoint, ONNX, params.yaml)
    into ``dst`` after checking the version is ``complete=true``; return the checkpoint's
    local path and the version."""
    mv = resolve(model_name, alias)
    if not _complete(mv):
        raise RegistryError(f"{model_name} version {mv.version} (@{alias}) is not complete=true")
    return _fetch_checkpoint(_client(), mv, Path(dst)), mv


# ----------------------------------------------------------------------------- server


AUTH_APP = "basic-auth"  # MLflow's basic-auth app (mlflow[auth]): users, passwords, permissions


def tracking_server_command(
    backend_store_uri: str,
    artifacts_destination: Path,
    host: str = "127.0.0.1",
    port: int = 5000,
    allowed_hosts: tuple[str, ...] = (),
    auth: bool = False,
) -> list[str]:
    """The ``mlflow server`` argv: one worker, artifacts proxied (``mlflow-artifacts:/``) to
    ``artifacts_destination``, Host headers limited to localhost, 127.0.0.1, ``host`` and
    ``allowed_hosts`` (add in-cluster service names there; MLflow answers 403 otherwise);
    with ``auth``, MLflow's basic-auth app (run it in ``tracking_server_env(auth_config=...)``)."""
    names = dict.fromkeys(["localhost", "127.0.0.1", host, *allowed_hosts])
    hosts = [entry for name in names for entry in (name, f"{name}:{port}")]
    destination = Path(artifacts_destination).absolute()
    destination.mkdir(parents=True, exist_ok=True)
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_store_uri,
        "--serve-artifacts", "--artifacts-destination", destination.as_uri(),
        "--host", host, "--port", str(port),
        "--workers", "1",
        "--allowed-hosts", ",".join(hosts),
        *(["--app-name", AUTH_APP] if auth else []),
    ]


def write_auth_config(path: Path, database_uri: str, default_permission: str = "READ") -> Path:
    """The basic-auth app's ini file: users and permissions in ``database_uri`` (SQLite or
    PostgreSQL), ``default_permission`` for users without an explicit grant (READ: every
    signed-in user may read runs and download models; only users granted EDIT/MANAGE, and the
    admin, may register or move aliases). No secrets: the admin password
    (``MLFLOW_AUTH_ADMIN_PASSWORD``, read at the first start) and the CSRF key
    (``MLFLOW_FLASK_SERVER_SECRET_KEY``) come from the environment."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {database_uri}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return path


def tracking_server_env(base: dict[str, str] | None = None, auth_config: Path | None = None) -> dict[str, str]:
    """The environment to run ``tracking_server_command`` in: ``base`` (default
    ``os.environ``) without ``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI`` and with MLflow's
    GenAI job runner off (arcscan runs no server-side jobs; when on, every start adds eight
    huey processes and leaves a temporary folder in /dev/shm); ``auth_config`` points the
    basic-auth app at its ini file."""
    env = dict(os.environ if base is None else base)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    if auth_config is not None:
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(Path(auth_config).absolute())
    return env


# ----------------------------------------------------------------------------- errors


def explain(error: MlflowException) -> RegistryError:
    """What went wrong talking to the tracking store, in one line an operator can act on."""
    where = _redact(tracking_uri())
    if error.error_code == "UNAUTHENTICATED":
        message = (f"MLflow at {where} wants credentials: set MLFLOW_TRACKING_USERNAME and "
                   "MLFLOW_TRACKING_PASSWORD (README: MLflow authentication)")
    elif error.error_code == "PERMISSION_DENIED":
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "?")
        message = f"MLflow at {where}: user {user!r} lacks the permission: {error.message.split('. ')[0]}"
    elif isinstance(error.__context__, (requests.ConnectionError, requests.Timeout)):
        message = (f"MLflow tracking server {where} unreachable (gave up after MLflow's retries, "
                   f"MLFLOW_HTTP_REQUEST_MAX_RETRIES): {type(error.__context__).__name__}")
    else:
        message = f"MLflow at {where}: {error.message}"
    return RegistryError(message)


@contextmanager
def errors_explained() -> Iterator[None]:
    """Raise an MLflow failure inside the block as :func:`explain`'s RegistryError."""
    try:
        yield
    except MlflowException as error:
        raise explain(error) from error


@contextmanager
def failures_reported(prog: str) -> Iterator[None]:
    """For scripts: a registry or MLflow failure in the block ends the process with one line
    ``prog: message`` on stderr and exit status 1, not a traceback."""
    try:
        with errors_explained():
            yield
    except RegistryError as error:
        sys.exit(f"{prog}: {error}")


def _redact(uri: str) -> str:
    """``uri`` without its password (for messages)."""
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@")
    return uri
