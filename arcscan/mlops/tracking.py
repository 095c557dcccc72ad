"""The MLflow tracking store: where it is, the arcscan experiment, and MLflow failures
explained in one line an operator can act on."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from arcscan.errors import RegistryError


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


def mlflow_client() -> MlflowClient:
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
    client = mlflow_client()
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


def explain(error: MlflowException) -> RegistryError:
    """What went wrong talking to the tracking store, in one line an operator can act on."""
    where = redact(tracking_uri())
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


def redact(uri: str) -> str:
    """``uri`` without its password (for messages)."""
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@")
    return uri
