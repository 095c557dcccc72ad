"""Generic helpers on rendered objects: naming and finding objects, pod templates, containers and
their ports, command-line options and $(VAR) expansion, mounted volumes and Secrets, label
selectors; ``mutate`` makes the broken copies the tests feed to the checks."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path


def ident(obj: dict) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('name')}"


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    """Objects of ``kind`` named ``name`` (for ConfigMaps and Secrets also ``name-<kustomize hash>``)."""
    out = []
    for obj in objects:
        if obj.get("kind") != kind:
            continue
        actual = obj.get("metadata", {}).get("name", "")
        hashed = kind in {"ConfigMap", "Secret"} and re.fullmatch(re.escape(name or "") + r"-[a-z0-9]{10}", actual)
        if name is None or actual == name or hashed:
            out.append(obj)
    return out


def mutate(objects: list[dict], kind: str, name: str, change) -> list[dict]:
    """A deep copy of ``objects`` with ``change(obj)`` applied to ``kind``/``name`` (tests)."""
    copied = copy.deepcopy(objects)
    targets = find(copied, kind, name)
    if not targets:
        raise KeyError(f"{kind}/{name} not rendered")
    for obj in targets:
        change(obj)
    return copied


def pod_template(obj: dict) -> dict | None:
    """The pod template (metadata + spec) of a workload, None for other kinds."""
    kind = obj.get("kind")
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return obj.get("spec", {}).get("template")
    if kind == "CronJob":
        return obj.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template")
    return None


def workloads(objects: list[dict]) -> Iterator[tuple[dict, dict, dict]]:
    """(workload, pod spec, pod labels) for each workload."""
    for obj in objects:
        template = pod_template(obj)
        if template is not None:
            yield obj, template.get("spec", {}), template.get("metadata", {}).get("labels", {}) or {}


def containers(spec: dict, init: bool = True) -> list[dict]:
    return list(spec.get("containers", [])) + (list(spec.get("initContainers", [])) if init else [])


def container_ports(spec: dict) -> tuple[set[str], set[int]]:
    names, numbers = set(), set()
    for container in containers(spec, init=False):
        for port in container.get("ports", []) or []:
            numbers.add(int(port["containerPort"]))
            if port.get("name"):
                names.add(port["name"])
    return names, numbers


def port_exists(port, spec: dict) -> bool:
    names, numbers = container_ports(spec)
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port) in numbers
    return port in names


def resolve_port(port, container: dict) -> int | None:
    """A named or numbered port as one of ``container``'s port numbers (None if it is none of them)."""
    for declared in container.get("ports", []) or []:
        if port == declared.get("name") or str(port) == str(declared["containerPort"]):
            return int(declared["containerPort"])
    return None


def option(argv: list[str], name: str) -> str | None:
    """The value after ``name`` in a command line (None if it is not there)."""
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def expanded_command(objects: list[dict], obj: dict, container: dict) -> tuple[list[str], dict[str, str]]:
    """A container's command + args with $(VAR) expanded from its env and the ConfigMaps of
    its namespace it loads with envFrom; also the variables."""
    namespace = obj["metadata"].get("namespace")
    values = {}
    for env_from in container.get("envFrom", []) or []:
        for cm in find(objects, "ConfigMap", (env_from.get("configMapRef") or {}).get("name")):
            if cm["metadata"].get("namespace") == namespace:
                values.update(cm.get("data", {}))
    values.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    argv = container.get("command", []) + container.get("args", [])
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: values.get(m.group(1), m.group(0)), a) for a in argv], values


def mounted_volume(path: str, container: dict, spec: dict) -> dict:
    """The volume mounted at the folder of ``path`` in ``container`` ({} if none)."""
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    return {v["name"]: v for v in spec.get("volumes", [])}.get(mounts.get(str(Path(path).parent)), {})


def mounted_secret(path: str, container: dict, spec: dict) -> str | None:
    """The Secret whose volume is mounted at the folder of ``path`` in ``container`` (None if none)."""
    return (mounted_volume(path, container, spec).get("secret") or {}).get("secretName")


def secret_env(container: dict, name: str) -> str | None:
    """The Secret that ``container``'s env var ``name`` comes from (its last definition wins, as
    in Kubernetes); None if it is a literal, from a ConfigMap or not set."""
    definitions = [e for e in container.get("env", []) or [] if e.get("name") == name]
    return ((definitions[-1].get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") if definitions else None


def selects(selector: dict | None, labels: dict) -> bool:
    """A label selector (matchLabels/matchExpressions, or a plain Service map) against labels."""
    if not selector:
        return False
    match_labels = selector.get("matchLabels", {}) if ("matchLabels" in selector or "matchExpressions" in selector) else selector
    if any(labels.get(k) != v for k, v in (match_labels or {}).items()):
        return False
    for expr in selector.get("matchExpressions", []) if isinstance(selector.get("matchExpressions"), list) else []:
        value, op, values = labels.get(expr["key"]), expr["operator"], expr.get("values", [])
        if (op == "In" and value not in values) or (op == "NotIn" and value in values) \
                or (op == "Exists" and expr["key"] not in labels) or (op == "DoesNotExist" and expr["key"] in labels):
            return False
    return True


def selected_pods(objects: list[dict], selector: dict | None, namespace: str | None) -> list[tuple[dict, dict, dict]]:
    return [
        (obj, spec, labels) for obj, spec, labels in workloads(objects)
        if obj.get("metadata", {}).get("namespace") == namespace and selects(selector, labels)
    ]
