"""The model registry: register a trained checkpoint as a version, resolve and download one.

Scheme (MLflow 3 aliases and tags; stages are deprecated):

* Every version's ``source`` is an artifact folder ``model-<content hash>`` of its training
  run, holding ``model.pt`` (a ``save_checkpoint`` state_dict, loadable with
  ``weights_only=True``), ``model.onnx`` and extra files such as ``params.yaml`` (the scan and
  CRF settings served with it). The folder name comes from the files' contents, so
  registering the same run again with other settings never overwrites an earlier version. Not ``mlflow.pytorch.log_model``:
  its default pt2 format fixes input shapes and loads back as a ``GraphModule``.
* A version is tagged ``complete=true`` only after it is READY and its checkpoint has been
  downloaded from the store and loaded; only complete versions ever get an alias.
* Alias ``challenger``: the latest complete registered version; ``champion`` (the version
  served) is moved by :mod:`arcscan.mlops.promotion`.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from arcscan.core.model import load_checkpoint
from arcscan.errors import RegistryError
from arcscan.mlops.tracking import mlflow_client, redact, tracking_uri

CHAMPION = "champion"
CHALLENGER = "challenger"
CHECKPOINT_NAME = "model.pt"
ONNX_NAME = "model.onnx"
READY_TIMEOUT_S = 120.0
RESERVED_TAGS = frozenset({"complete", "artifacts", "checkpoint", "onnx", "files"})
METRIC_TAG_PREFIX = "metric."  # a version's snapshot of its run's metrics at registration


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


def get_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    """The version with ``version`` as a string whatever the store (SQL stores give ints)."""
    return ModelVersion.from_proto(client.get_model_version(name, str(version)).to_proto())


def _wait_ready(client: MlflowClient, name: str, version: str, timeout_s: float = READY_TIMEOUT_S) -> ModelVersion:
    deadline = time.monotonic() + timeout_s
    while True:
        mv = get_version(client, name, version)
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
    client = mlflow_client()
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
    return get_version(client, model_name, mv.version)


def registered_model(client: MlflowClient, name: str) -> tuple[RegisteredModel, dict[str, str]]:
    """The registered model and its aliases (alias -> version string)."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise RegistryError(f"no registered model {name!r} in {redact(tracking_uri())}") from error
    return model, {alias: str(version) for alias, version in model.aliases.items()}


def is_complete(mv: ModelVersion) -> bool:
    """Whether a version passed registration (READY, its checkpoint downloaded and loaded)."""
    return mv.tags.get("complete") == "true"


def resolve(model_name: str, alias: str) -> ModelVersion:
    """The version ``model_name@alias`` (RegistryError if there is none)."""
    client = mlflow_client()
    _, aliases = registered_model(client, model_name)
    if alias not in aliases:
        raise RegistryError(f"{model_name} has no alias @{alias} (aliases: {sorted(aliases) or 'none'})")
    return get_version(client, model_name, aliases[alias])


def download_checkpoint(model_name: str, alias: str, dst: Path) -> tuple[Path, ModelVersion]:
    """Download the artifact folder of ``model_name@alias`` (checkpoint, ONNX, params.yaml)
    into ``dst`` after checking the version is ``complete=true``; return the checkpoint's
    local path and the version."""
    mv = resolve(model_name, alias)
    if not is_complete(mv):
        raise RegistryError(f"{model_name} version {mv.version} (@{alias}) is not complete=true")
    return _fetch_checkpoint(mlflow_client(), mv, Path(dst)), mv
