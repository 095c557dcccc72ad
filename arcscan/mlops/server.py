"""The MLflow tracking server launcher: ``mlflow server`` argv, environment and the basic-auth
app's configuration (``arcscan mlflow-server``, the tests' real servers, the Kubernetes
deployment's checks)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


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
