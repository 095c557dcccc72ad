"""TorchServe's pod and configuration: the model store filled from the registry champion, writable
volumes, config.properties (safe settings; the ConfigMap's copy of serving/config.properties) and
the NetworkPolicy in front of it."""

from __future__ import annotations

import re
from pathlib import Path

from .constants import STREAM_CLIENT_COMPONENT, TORCHSERVE_COMPONENT
from .objects import find, ident, option, pod_template, selects, workloads

# What the Kubernetes copy of config.properties may change relative to serving/config.properties.
CONFIG_KEYS_ALLOWED_TO_DIFFER = {"metrics_address"}


def parse_properties(text: str) -> dict[str, str]:
    """Java properties as TorchServe reads them (key=value lines; '#'/'!' comments; '\\x' -> 'x')."""
    props = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^=:\s]+)\s*(?:[=:]\s*|\s+)?(.*)", line)
        key, value = match.groups()
        props[key] = re.sub(r"\\(.)", r"\1", value.strip())
    return props


def config_properties_problems(text: str) -> list[str]:
    """TorchServe's safe settings: token authorization on, no model API, inference and management
    on loopback, allowed_urls limited to the local model store, Prometheus metrics."""
    props = parse_properties(text)
    problems = []
    if props.get("disable_token_authorization", "false").lower() == "true":
        problems.append("disable_token_authorization=true: token authorization is off")
    if props.get("enable_model_api", "false").lower() != "false":
        problems.append("enable_model_api is not false")
    # Both want TorchServe's own keys, new at every start: clients come through arcscan auth-proxy.
    for key in ("inference_address", "management_address"):
        if not re.fullmatch(r"https?://127\.0\.0\.1:\d+", props.get(key, "")):
            problems.append(f"{key} {props.get(key, '')!r} is not on 127.0.0.1")
    if props.get("grpc_management_address", "127.0.0.1") != "127.0.0.1":
        problems.append("grpc_management_address is not 127.0.0.1")
    allowed = props.get("allowed_urls", "")
    if not allowed or not allowed.startswith("^file:") or ".*" in allowed or "http" in allowed or "s3" in allowed:
        problems.append(f"allowed_urls {allowed!r} is not restricted to local model-store archives")
    if props.get("metrics_mode") != "prometheus":
        problems.append(f"metrics_mode is {props.get('metrics_mode')!r}, not prometheus")
    if props.get("install_py_dep_per_model", "false").lower() != "false":
        problems.append("install_py_dep_per_model is on (pip installs at model load)")
    return problems


def derived_config_problems(repo_text: str, cluster_text: str, allowed: set[str] = CONFIG_KEYS_ALLOWED_TO_DIFFER) -> list[str]:
    """The ConfigMap's config.properties differs from serving/config.properties only in
    ``allowed`` keys, and there by listening on 0.0.0.0."""
    repo, cluster = parse_properties(repo_text), parse_properties(cluster_text)
    problems = []
    for key in sorted(set(repo) | set(cluster)):
        if repo.get(key) != cluster.get(key):
            if key not in allowed:
                problems.append(f"{key}: {cluster.get(key)!r} in the ConfigMap, {repo.get(key)!r} in serving/config.properties")
            elif not re.fullmatch(r"https?://0\.0\.0\.0:\d+", cluster.get(key, "")):
                problems.append(f"{key}: {cluster.get(key)!r} is neither the repository value nor 0.0.0.0")
    return problems


def torchserve_container(spec: dict) -> dict | None:
    """The container of a pod spec that runs torchserve (None if none does)."""
    return next((c for c in spec.get("containers", []) if "torchserve" in (c.get("args", []) + c.get("command", []))), None)


def torchserve_properties(objects: list[dict], workload: dict) -> dict[str, str]:
    """config.properties of the ConfigMap mounted into a TorchServe workload ({} if none)."""
    spec = pod_template(workload)["spec"]
    namespace = workload["metadata"].get("namespace")
    for volume in spec.get("volumes", []) or []:
        if "configMap" in volume:
            for cm in find(objects, "ConfigMap", volume["configMap"]["name"]):
                if cm["metadata"].get("namespace") == namespace and "config.properties" in cm.get("data", {}):
                    return parse_properties(cm["data"]["config.properties"])
    return {}


def torchserve_problems(objects: list[dict]) -> list[str]:
    """TorchServe's pod: the model comes from the registry champion via an init container into
    the model store the server reads; everything TorchServe writes is a writable volume
    (read-only root file system); the config is the ConfigMap; a NetworkPolicy covers it."""
    problems = []
    found = [(obj, spec, labels) for obj, spec, labels in workloads(objects)
             if labels.get("app.kubernetes.io/component") == TORCHSERVE_COMPONENT]
    if not found:
        return ["no TorchServe workload (component torchserve)"]
    for obj, spec, labels in found:
        server = torchserve_container(spec)
        if server is None:
            problems.append(f"{ident(obj)}: no container runs torchserve")
            continue
        argv = server.get("command", []) + server.get("args", [])
        mounts = {m["mountPath"]: m for m in server.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        store, config = option(argv, "--model-store"), option(argv, "--ts-config")
        if "--disable-token-auth" in argv or "--enable-model-api" in argv:
            problems.append(f"{ident(obj)}: torchserve started with an unsafe flag")
        if store not in mounts:
            problems.append(f"{ident(obj)}: --model-store {store} is not a mounted volume")
        fetch = [c for c in spec.get("initContainers", []) if "serving/build_mar.py" in " ".join(c.get("command", []) + c.get("args", []))]
        if not fetch:
            problems.append(f"{ident(obj)}: no init container runs serving/build_mar.py")
        for init in fetch:
            init_argv = init.get("command", []) + init.get("args", [])
            output = init_argv[init_argv.index("--output") + 1] if "--output" in init_argv else None
            alias = init_argv[init_argv.index("--alias") + 1] if "--alias" in init_argv else None
            if alias != "champion":
                problems.append(f"{ident(obj)}: init container packages alias {alias!r}, not champion")
            init_mounts = {m["mountPath"]: m["name"] for m in init.get("volumeMounts", [])}
            if output not in init_mounts or store not in mounts or init_mounts[output] != mounts[store]["name"]:
                problems.append(f"{ident(obj)}: the init container's --output {output} is not the server's model store volume")
            if not any(e.get("name") == "MLFLOW_TRACKING_URI" for e in init.get("env", [])):
                problems.append(f"{ident(obj)}: the init container has no MLFLOW_TRACKING_URI")
        if config is None or str(Path(config).parent) not in mounts or "configMap" not in volumes.get(mounts[str(Path(config).parent)]["name"], {}):
            problems.append(f"{ident(obj)}: --ts-config {config} is not mounted from a ConfigMap")
        env = {e["name"]: e.get("value") for e in server.get("env", [])}
        writable = [server.get("workingDir"), env.get("TMPDIR"), env.get("LOG_LOCATION")]
        for path in writable:
            volume = volumes.get(mounts.get(path, {}).get("name"), {})
            if not path or mounts.get(path, {}).get("readOnly") or "emptyDir" not in volume:
                problems.append(f"{ident(obj)}: {path} (working dir with key_file.json / temp / logs) is not a writable emptyDir")
        namespace = obj["metadata"].get("namespace")
        policies = [p for p in objects if p.get("kind") == "NetworkPolicy" and p["metadata"].get("namespace") == namespace
                    and selects(p["spec"].get("podSelector"), labels)]
        if not policies:
            problems.append(f"{ident(obj)}: no NetworkPolicy selects the TorchServe pods")
        problems += networkpolicy_problems(policies)
    return problems


def networkpolicy_problems(policies: list[dict]) -> list[str]:
    """TorchServe's ingress: stream clients (by pod label, same namespace) and Prometheus (by
    namespace and pod label) only, each to named ports; never an empty rule (allow all)."""
    problems = []
    for policy in policies:
        spec = policy["spec"]
        if "Ingress" not in spec.get("policyTypes", ["Ingress"]):
            problems.append(f"{ident(policy)}: does not restrict ingress")
        for rule in spec.get("ingress", []) or []:
            peers = rule.get("from")
            if not peers:
                problems.append(f"{ident(policy)}: an ingress rule without `from` admits everyone")
                continue
            if not rule.get("ports"):
                problems.append(f"{ident(policy)}: an ingress rule without ports opens every port")
            for peer in peers:
                pod_labels = (peer.get("podSelector") or {}).get("matchLabels", {})
                if "ipBlock" in peer:
                    problems.append(f"{ident(policy)}: admits an ipBlock")
                elif "namespaceSelector" in peer:
                    if not (peer["namespaceSelector"] or {}).get("matchLabels") or pod_labels.get("app.kubernetes.io/name") != "prometheus":
                        problems.append(f"{ident(policy)}: a namespaceSelector peer that is not Prometheus in its namespace")
                elif pod_labels.get("app.kubernetes.io/component") != STREAM_CLIENT_COMPONENT:
                    problems.append(f"{ident(policy)}: admits pods other than the stream clients: {pod_labels}")
    return problems
