"""MLflow: the registry decides what is served, so the server runs MLflow's basic-auth app (as
arcscan.mlops.AUTH_APP) and every client signs in with a user of its own."""

from __future__ import annotations

from .constants import TORCHSERVE_COMPONENT
from .objects import containers, ident, mounted_volume, option, secret_env, workloads

MLFLOW_COMPONENT = "mlflow"
TRAINING_COMPONENT = "training"
MLFLOW_AUTH_APP = "basic-auth"
MLFLOW_SERVER_SECRETS = ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD")
MLFLOW_CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
MLFLOW_OPEN_PATHS = ("/health",)  # what the auth app answers without a login (HTTP probes)


def mlflow_server_container(spec: dict) -> dict | None:
    """The container of a pod spec that runs ``mlflow server`` (None if none does)."""
    return next((c for c in spec.get("containers", [])
                 if (c.get("command", []) + c.get("args", []))[:2] == ["mlflow", "server"]), None)


def mlflow_auth_problems(objects: list[dict]) -> list[str]:
    """MLflow's server runs the basic-auth app with its CSRF key and the admin's first password
    from Secrets; its ini file, which holds the user database's URI with its password, is on a
    Secret volume or on a memory-backed emptyDir an init container writes (never a ConfigMap,
    never the node's disk); HTTP probes only ask paths the auth app answers without a login."""
    servers = [(obj, spec, mlflow_server_container(spec)) for obj, spec, labels in workloads(objects)
               if labels.get("app.kubernetes.io/component") == MLFLOW_COMPONENT]
    if not servers:
        return ["no MLflow workload (component mlflow)"]
    problems = []
    for obj, spec, server in servers:
        if server is None:
            problems.append(f"{ident(obj)}: no container runs mlflow server")
            continue
        where = f"{ident(obj)} container {server['name']}"
        if option(server.get("command", []) + server.get("args", []), "--app-name") != MLFLOW_AUTH_APP:
            problems.append(f"{where}: mlflow server without --app-name {MLFLOW_AUTH_APP}: whoever reaches it may move the aliases")
        problems += [f"{where}: {name} is not from a Secret (secretKeyRef)" for name in MLFLOW_SERVER_SECRETS
                     if secret_env(server, name) is None]
        config = {e["name"]: e.get("value") for e in server.get("env", [])}.get("MLFLOW_AUTH_CONFIG_PATH")
        volume = mounted_volume(config or "", server, spec)
        written = (volume.get("emptyDir") or {}).get("medium") == "Memory" and any(
            m["name"] == volume["name"] and not m.get("readOnly")
            for init in spec.get("initContainers", []) for m in init.get("volumeMounts", []))
        if not config:
            problems.append(f"{where}: no MLFLOW_AUTH_CONFIG_PATH (MLflow's packaged ini: SQLite in the working directory)")
        elif "secret" not in volume and not written:
            problems.append(f"{where}: MLFLOW_AUTH_CONFIG_PATH {config} (the ini with the database password) is neither on "
                            "a Secret volume nor on a memory-backed emptyDir an init container writes")
        for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
            path = (server.get(probe_name) or {}).get("httpGet", {}).get("path")
            if path is not None and not path.startswith(MLFLOW_OPEN_PATHS):
                problems.append(f"{where}: {probe_name} asks {path!r}, which the auth app answers only after a login")
    return problems


def mlflow_client_problems(objects: list[dict]) -> list[str]:
    """Every container with MLFLOW_TRACKING_URI signs in: MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD from one Secret (secretKeyRef, never a literal), and TorchServe's
    pods (READ is all they need) never hold the training user's Secret (EDIT: register, move
    aliases)."""
    problems = []
    secrets: dict[str, set[str]] = {}  # component -> the Secrets its MLflow credentials come from
    for obj, spec, labels in workloads(objects):
        for container in containers(spec):
            if not any(e.get("name") == "MLFLOW_TRACKING_URI" for e in container.get("env", []) or []):
                continue
            sources = {name: secret_env(container, name) for name in MLFLOW_CREDENTIALS}
            where = f"{ident(obj)} container {container['name']}"
            problems += [f"{where}: {name} is not from a Secret (secretKeyRef)" for name, secret in sources.items() if secret is None]
            if None not in sources.values() and len(set(sources.values())) > 1:
                problems.append(f"{where}: user and password from different Secrets {sorted(sources.values())}")
            secrets.setdefault(labels.get("app.kubernetes.io/component", ""), set()).update(filter(None, sources.values()))
    if shared := secrets.get(TORCHSERVE_COMPONENT, set()) & secrets.get(TRAINING_COMPONENT, set()):
        problems.append(f"TorchServe signs in to MLflow with the training user's Secret {sorted(shared)}: it needs a READ user")
    return problems
