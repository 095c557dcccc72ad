"""Offline checks of arcscan's deployment files: Kubernetes manifests, Dockerfiles, Prometheus.

No cluster, registry or Docker engine is needed. ``tests/test_k8s.py`` runs every check on the
real files and, to show that the checks bite, on broken copies: both go through the functions
below. Each ``*_problems`` function returns a list of human-readable problems (empty = fine).

Tools (``k8s/install-tools.sh`` installs them): kustomize via ``kubectl kustomize`` (or a
``kustomize`` binary), ``checkov`` and ``promtool``; looked up in ``.tools/bin`` first, then on
PATH. Schemas: ``kubernetes-validate`` (Python API, strict) from the project's environment.

Load it by path (``k8s`` is not a package)::

    spec = importlib.util.spec_from_file_location("k8s_checks", "k8s/checks.py")
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
TOOLS_BIN = ROOT / ".tools" / "bin"
KUBERNETES_VERSION = "1.33.0"  # the schema version objects must validate against (strict)

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
LONG_RUNNING_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                        "CustomResourceDefinition", "PriorityClass"}
OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}  # monitoring.coreos.com CRDs
REQUIRED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of")

# TorchServe: these ports want a bearer token (token authorization), so no HTTP probe may use them.
TORCHSERVE_COMPONENT = "torchserve"
TOKEN_PROTECTED_PORT_KEYS = ("inference_address", "management_address")
# The sidecar in TorchServe's pod that stream clients talk to (arcscan auth-proxy); it wants the
# shared stream token, and calls TorchServe on loopback with the pod's own key.
AUTH_PROXY_CONTAINER = "auth-proxy"
# What the Kubernetes copy of config.properties may change relative to serving/config.properties.
CONFIG_KEYS_ALLOWED_TO_DIFFER = {"metrics_address"}
# MLflow: the registry decides what is served, so the server runs MLflow's basic-auth app (as
# arcscan.registry.AUTH_APP) and every client signs in with a user of its own.
MLFLOW_COMPONENT = "mlflow"
MLFLOW_AUTH_APP = "basic-auth"
MLFLOW_SERVER_SECRETS = ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD")
MLFLOW_CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
MLFLOW_OPEN_PATHS = ("/health",)  # what the auth app answers without a login (HTTP probes)
TRAINING_COMPONENT = "training"


class ToolMissing(RuntimeError):
    """A command-line tool is not installed (tests skip with this message)."""


# ----------------------------------------------------------------------------------- tools


def tool(name: str) -> str | None:
    """``.tools/bin/<name>`` if it exists, else ``<name>`` on PATH, else None."""
    local = TOOLS_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def tool_env() -> dict[str, str]:
    """The environment for tool subprocesses: ``.tools/bin`` first on PATH (checkov looks for
    kustomize/kubectl there), no telemetry or update checks."""
    env = dict(os.environ)
    env["PATH"] = f"{TOOLS_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false", LOG_LEVEL="ERROR")
    return env


def kustomize_command() -> list[str]:
    """``kustomize build`` or ``kubectl kustomize``, whichever is installed."""
    if found := tool("kustomize"):
        return [found, "build"]
    if found := tool("kubectl"):
        return [found, "kustomize"]
    raise ToolMissing("neither kustomize nor kubectl found (bash k8s/install-tools.sh)")


# ------------------------------------------------------------------------------- rendering


def render_text(directory: Path) -> str:
    """``kustomize build <directory>``; raises RuntimeError with kustomize's message on failure."""
    result = subprocess.run([*kustomize_command(), str(directory)], capture_output=True, text=True, env=tool_env(), timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"kustomize build {directory} failed:\n{result.stderr.strip()}")
    return result.stdout


def load_objects(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(directory: Path) -> list[dict]:
    return load_objects(render_text(directory))


def compose(folder: Path, resources: Iterable[Path] = (), components: Iterable[Path] = (), namespace: str | None = None,
            extra: dict | None = None) -> Path:
    """Write ``folder/kustomization.yaml`` combining existing kustomizations (relative paths:
    kustomize refuses absolute ones); return ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    doc: dict = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    if namespace:
        doc["namespace"] = namespace
    doc["resources"] = [os.path.relpath(Path(p).resolve(), folder.resolve()) for p in resources]
    if components := [os.path.relpath(Path(p).resolve(), folder.resolve()) for p in components]:
        doc["components"] = components
    doc.update(extra or {})
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def write_objects(folder: Path, objects: list[dict]) -> Path:
    """``folder/manifests.yaml`` + a kustomization listing it (for checkov on edited objects)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifests.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["manifests.yaml"]})
    )
    return folder


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


# ----------------------------------------------------------------------------- pod helpers


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


# ------------------------------------------------------------------------------- schema


def schema_problems(objects: list[dict], version: str = KUBERNETES_VERSION, skip_kinds: Iterable[str] = ()) -> list[str]:
    """Strict validation of every object against the Kubernetes ``version`` schema
    (misspelled or unknown fields, wrong types, missing required fields). Kinds in
    ``skip_kinds`` (CRDs without a bundled schema) are left out explicitly."""
    import kubernetes_validate

    skip = set(skip_kinds)
    problems = []
    for obj in objects:
        if obj.get("kind") in skip:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            problems.append(f"{ident(obj)}: {path}: {error.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as error:
            problems.append(f"{ident(obj)}: no schema for {obj.get('apiVersion')} {obj.get('kind')} in {version}: {error}")
    return problems


def operator_resource_problems(objects: list[dict]) -> list[str]:
    """The Prometheus-operator CRs (no schema bundled): API group, and that their selectors and
    ports match arcscan's Services/pods."""
    problems = []
    for obj in objects:
        kind = obj.get("kind")
        if kind not in OPERATOR_KINDS:
            continue
        if obj.get("apiVersion") != "monitoring.coreos.com/v1":
            problems.append(f"{ident(obj)}: apiVersion {obj.get('apiVersion')} is not monitoring.coreos.com/v1")
        spec, namespace = obj.get("spec", {}), obj.get("metadata", {}).get("namespace")
        if kind == "ServiceMonitor":
            services = [s for s in objects if s.get("kind") == "Service" and s["metadata"].get("namespace") == namespace
                        and selects(spec.get("selector"), s["metadata"].get("labels", {}))]
            if not services:
                problems.append(f"{ident(obj)}: selects no Service")
            for endpoint in spec.get("endpoints", []):
                if not any(p.get("name") == endpoint.get("port") for s in services for p in s["spec"].get("ports", [])):
                    problems.append(f"{ident(obj)}: no selected Service has a port named {endpoint.get('port')!r}")
        if kind == "PodMonitor":
            pods = selected_pods(objects, spec.get("selector"), namespace)
            if not pods:
                problems.append(f"{ident(obj)}: selects no pods")
            for endpoint in spec.get("podMetricsEndpoints", []):
                if not all(port_exists(endpoint.get("port"), pod_spec) for _, pod_spec, _ in pods):
                    problems.append(f"{ident(obj)}: port {endpoint.get('port')!r} missing on a selected pod")
        if kind == "PrometheusRule" and not spec.get("groups"):
            problems.append(f"{ident(obj)}: no rule groups")
    return problems


# ---------------------------------------------------------------------------------- checkov


def checkov_report(directory: Path, framework: str = "kustomize", files: Iterable[Path] = ()) -> dict:
    """Run checkov offline on a kustomization directory (or on ``files`` with another
    framework); return {passed, failed, skipped, resources, failed_checks, skipped_checks}."""
    checkov = tool("checkov")
    if not checkov:
        raise ToolMissing("checkov not found (bash k8s/install-tools.sh)")
    target = [arg for f in files for arg in ("-f", str(f))] or ["-d", str(directory)]
    command = [checkov, *target, "--framework", framework, "--skip-download", "--quiet", "--compact", "-o", "json"]
    result = subprocess.run(command, capture_output=True, text=True, env=tool_env(), timeout=300)
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise RuntimeError(f"checkov printed no JSON (exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}") from error
    reports = data if isinstance(data, list) else [data]
    summary = {"passed": 0, "failed": 0, "skipped": 0, "resources": 0, "failed_checks": [], "skipped_checks": []}
    for report in reports:
        if "summary" not in report:  # "no files found" answers
            continue
        summary["passed"] += report["summary"].get("passed", 0)
        summary["failed"] += report["summary"].get("failed", 0)
        summary["skipped"] += report["summary"].get("skipped", 0)
        summary["resources"] += report["summary"].get("resource_count", 0)
        results = report.get("results", {})
        summary["failed_checks"] += [(c["check_id"], c["resource"]) for c in results.get("failed_checks", [])]
        summary["skipped_checks"] += [
            (c["check_id"], c["resource"], (c.get("check_result", {}) or {}).get("suppress_comment", ""))
            for c in results.get("skipped_checks", [])
        ]
    return summary


def checkov_problems(report: dict, min_reason: int = 20) -> list[str]:
    """Failed checks, skips without a real justification, and a scan that found nothing."""
    problems = [f"checkov {check}: {resource}" for check, resource in report["failed_checks"]]
    problems += [
        f"checkov skip {check} on {resource} has no justification ({reason!r})"
        for check, resource, reason in report["skipped_checks"]
        if len((reason or "").strip()) < min_reason or reason.strip().lower().startswith("no comment")
    ]
    if report["passed"] == 0:
        problems.append("checkov checked nothing (is kustomize/kubectl on its PATH?)")
    return problems


# --------------------------------------------------------------------------------- semantic


def label_problems(objects: list[dict]) -> list[str]:
    """Recommended labels on every object and its pod template; a namespace on every
    namespaced object (set by the overlay)."""
    problems = []
    for obj in objects:
        labels = obj.get("metadata", {}).get("labels", {}) or {}
        missing = [key for key in REQUIRED_LABELS if not labels.get(key)]
        if missing:
            problems.append(f"{ident(obj)}: labels missing: {', '.join(missing)}")
        elif labels["app.kubernetes.io/part-of"] != "arcscan":
            problems.append(f"{ident(obj)}: app.kubernetes.io/part-of is {labels['app.kubernetes.io/part-of']!r}")
        if obj.get("kind") not in CLUSTER_SCOPED_KINDS and not obj.get("metadata", {}).get("namespace"):
            problems.append(f"{ident(obj)}: no namespace")
        template = pod_template(obj)
        if template is not None:
            pod_labels = template.get("metadata", {}).get("labels", {}) or {}
            if missing := [key for key in REQUIRED_LABELS if not pod_labels.get(key)]:
                problems.append(f"{ident(obj)}: pod template labels missing: {', '.join(missing)}")
            if pod_labels.get("app.kubernetes.io/component") != labels.get("app.kubernetes.io/component"):
                problems.append(f"{ident(obj)}: pod template component differs from the object's")
    return problems


def image_problems(objects: list[dict]) -> list[str]:
    """Every container image is pinned: a tag that is not ``latest``, or a digest."""
    problems = []
    for obj, spec, _ in workloads(objects):
        for container in containers(spec):
            image = container.get("image", "")
            name = image.split("@")[0]
            last = name.rsplit("/", 1)[-1]
            tag = last.split(":", 1)[1] if ":" in last else None
            if "@sha256:" in image:
                continue
            if not image:
                problems.append(f"{ident(obj)} container {container.get('name')}: no image")
            elif tag is None:
                problems.append(f"{ident(obj)} container {container.get('name')}: image {image} has no tag")
            elif tag == "latest" or not re.search(r"\d", tag):
                problems.append(f"{ident(obj)} container {container.get('name')}: image {image} is not pinned to a version")
    return problems


def selector_problems(objects: list[dict]) -> list[str]:
    """Workload selectors match their pod labels; Services, PDBs, HPAs and NetworkPolicies
    point at something that exists; Service targetPorts are container ports."""
    problems = []
    for obj, _, labels in workloads(objects):
        if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet"} and not selects(obj["spec"].get("selector"), labels):
            problems.append(f"{ident(obj)}: spec.selector does not match its pod template labels")
        if obj["kind"] == "StatefulSet":
            service = find([o for o in objects if o["metadata"].get("namespace") == obj["metadata"].get("namespace")],
                           "Service", obj["spec"].get("serviceName"))
            if not service:
                problems.append(f"{ident(obj)}: serviceName {obj['spec'].get('serviceName')!r} is no Service")
    for obj in objects:
        kind, namespace, spec = obj.get("kind"), obj.get("metadata", {}).get("namespace"), obj.get("spec", {})
        if kind == "Service" and spec.get("selector"):
            pods = selected_pods(objects, spec["selector"], namespace)
            if not pods:
                problems.append(f"{ident(obj)}: selector matches no pod template")
            for port in spec.get("ports", []):
                target = port.get("targetPort", port.get("port"))
                for workload, pod_spec, _ in pods:
                    if not port_exists(target, pod_spec):
                        problems.append(f"{ident(obj)}: targetPort {target!r} is not a container port of {ident(workload)}")
        elif kind == "PodDisruptionBudget" and not selected_pods(objects, spec.get("selector"), namespace):
            problems.append(f"{ident(obj)}: selector matches no pod template")
        elif kind == "HorizontalPodAutoscaler":
            ref = spec.get("scaleTargetRef", {})
            targets = [o for o in find(objects, ref.get("kind", ""), ref.get("name"))
                       if o["metadata"].get("namespace") == namespace and o.get("apiVersion") == ref.get("apiVersion")]
            if not targets:
                problems.append(f"{ident(obj)}: scaleTargetRef {ref} does not exist")
            elif spec.get("minReplicas", 1) > spec.get("maxReplicas", 0):
                problems.append(f"{ident(obj)}: minReplicas > maxReplicas")
            elif any(m.get("type") == "Resource" for m in spec.get("metrics", [])):
                for target in targets:  # utilisation targets need requests on every container
                    for container in containers(pod_template(target)["spec"], init=False):
                        if not (container.get("resources", {}).get("requests", {}) or {}).get("cpu"):
                            problems.append(f"{ident(obj)}: {ident(target)} container {container['name']} has no CPU request")
        elif kind == "NetworkPolicy":
            pods = selected_pods(objects, spec.get("podSelector"), namespace)
            if not pods:
                problems.append(f"{ident(obj)}: podSelector matches no pod template")
            for rule in spec.get("ingress", []) or []:
                for port in rule.get("ports", []) or []:
                    for workload, pod_spec, _ in pods:
                        if "port" in port and not port_exists(port["port"], pod_spec):
                            problems.append(f"{ident(obj)}: port {port['port']!r} is not a container port of {ident(workload)}")
    return problems


def probe_problems(objects: list[dict]) -> list[str]:
    """Long-running containers have readiness and liveness probes; probe ports exist; no HTTP
    probe on TorchServe's token-protected ports (the kubelet sends no bearer token)."""
    problems = []
    for obj, spec, labels in workloads(objects):
        for container in containers(spec, init=False):
            where = f"{ident(obj)} container {container.get('name')}"
            if obj["kind"] in LONG_RUNNING_KINDS:
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in container:
                        problems.append(f"{where}: no {probe}")
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(probe_name)
                if not probe:
                    continue
                for handler in ("tcpSocket", "httpGet", "grpc"):
                    if handler in probe and not port_exists(probe[handler].get("port"), spec):
                        problems.append(f"{where}: {probe_name} port {probe[handler].get('port')!r} is not a container port")
                if labels.get("app.kubernetes.io/component") == TORCHSERVE_COMPONENT and "httpGet" in probe:
                    port = probe["httpGet"].get("port")
                    protected = torchserve_token_ports(objects, obj)
                    if port in protected["names"] or (str(port).isdigit() and int(port) in protected["numbers"]):
                        problems.append(f"{where}: {probe_name} is an HTTP probe on token-protected port {port!r}")
    return problems


def security_problems(objects: list[dict]) -> list[str]:
    """The restricted profile for every pod and container (init containers too), plus CPU and
    memory requests and limits."""
    problems = []
    for obj, spec, _ in workloads(objects):
        pod = spec.get("securityContext", {}) or {}
        if pod.get("runAsNonRoot") is not True:
            problems.append(f"{ident(obj)}: pod securityContext.runAsNonRoot is not true")
        if (pod.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{ident(obj)}: pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{ident(obj)}: automountServiceAccountToken is not false")
        for container in containers(spec):
            where = f"{ident(obj)} container {container.get('name')}"
            context = container.get("securityContext", {}) or {}
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{where}: capabilities do not drop ALL")
            if context.get("privileged"):
                problems.append(f"{where}: privileged")
            resources = container.get("resources", {}) or {}
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if not (resources.get(section) or {}).get(resource):
                        problems.append(f"{where}: no {resource} {section[:-1]}")
    return problems


def referenced_names(spec: dict) -> dict[str, set[str]]:
    """ConfigMaps, Secrets and PVCs a pod spec refers to."""
    refs = {"ConfigMap": set(), "Secret": set(), "PersistentVolumeClaim": set()}
    for container in containers(spec):
        for env in container.get("env", []) or []:
            source = env.get("valueFrom", {}) or {}
            if "configMapKeyRef" in source and not source["configMapKeyRef"].get("optional"):
                refs["ConfigMap"].add(source["configMapKeyRef"]["name"])
            if "secretKeyRef" in source and not source["secretKeyRef"].get("optional"):
                refs["Secret"].add(source["secretKeyRef"]["name"])
        for env_from in container.get("envFrom", []) or []:
            if "configMapRef" in env_from and not env_from["configMapRef"].get("optional"):
                refs["ConfigMap"].add(env_from["configMapRef"]["name"])
            if "secretRef" in env_from and not env_from["secretRef"].get("optional"):
                refs["Secret"].add(env_from["secretRef"]["name"])
    for volume in spec.get("volumes", []) or []:
        if "configMap" in volume and not volume["configMap"].get("optional"):
            refs["ConfigMap"].add(volume["configMap"]["name"])
        if "secret" in volume and not volume["secret"].get("optional"):
            refs["Secret"].add(volume["secret"]["secretName"])
        if "persistentVolumeClaim" in volume:
            refs["PersistentVolumeClaim"].add(volume["persistentVolumeClaim"]["claimName"])
        for source in (volume.get("projected") or {}).get("sources", []) or []:
            if "configMap" in source and not source["configMap"].get("optional"):
                refs["ConfigMap"].add(source["configMap"]["name"])
            if "secret" in source and not source["secret"].get("optional"):
                refs["Secret"].add(source["secret"]["name"])
    return refs


def reference_problems(objects: list[dict], external_secrets: Iterable[str] = ()) -> list[str]:
    """Every ConfigMap, Secret and PVC a pod uses is rendered too, unless it is a Secret created
    outside the repository on purpose (``external_secrets``: prod's credentials)."""
    external = set(external_secrets)
    problems = []
    for obj, spec, _ in workloads(objects):
        namespace = obj["metadata"].get("namespace")
        present = {o["metadata"]["name"] for o in objects if o["metadata"].get("namespace") == namespace}
        claim_templates = {t["metadata"]["name"] for t in obj.get("spec", {}).get("volumeClaimTemplates", []) or []}
        volumes = {v["name"] for v in spec.get("volumes", []) or []} | claim_templates
        for kind, names in referenced_names(spec).items():
            for name in names:
                kinds_present = {o["metadata"]["name"] for o in objects
                                 if o.get("kind") == kind and o["metadata"].get("namespace") == namespace}
                if name not in kinds_present and not (kind == "Secret" and name in external):
                    problems.append(f"{ident(obj)}: {kind} {name!r} is referenced but not defined"
                                    + (" (a resource of another kind has that name)" if name in present else ""))
        for container in containers(spec):
            for mount in container.get("volumeMounts", []) or []:
                if mount["name"] not in volumes:
                    problems.append(f"{ident(obj)} container {container['name']}: volumeMount {mount['name']!r} has no volume")
    return problems


def torchserve_token_ports(objects: list[dict], workload: dict) -> dict[str, set]:
    """The container port names/numbers of the token-protected listeners in TorchServe's pod:
    TorchServe's inference and management, and the auth proxy's."""
    props = torchserve_properties(objects, workload)
    numbers = set()
    for key in TOKEN_PROTECTED_PORT_KEYS:
        match = re.search(r":(\d+)$", props.get(key, ""))
        if match:
            numbers.add(int(match.group(1)))
    if (proxy := auth_proxy(objects, workload)) and proxy["port"]:
        numbers.add(proxy["port"])
    names = set()
    for container in containers(pod_template(workload)["spec"], init=False):
        for port in container.get("ports", []) or []:
            if int(port["containerPort"]) in numbers and port.get("name"):
                names.add(port["name"])
    return {"names": names, "numbers": numbers}


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


def torchserve_container(spec: dict) -> dict | None:
    """The container of a pod spec that runs torchserve (None if none does)."""
    return next((c for c in spec.get("containers", []) if "torchserve" in (c.get("args", []) + c.get("command", []))), None)


def auth_proxy(objects: list[dict], workload: dict) -> dict | None:
    """The auth-proxy sidecar of a workload: {workload (its ident), container, argv ($(VAR)
    expanded), port (of --listen), secret (of --tokens-file)}; None without such a container."""
    spec = pod_template(workload)["spec"]
    container = next((c for c in spec.get("containers", []) if c.get("name") == AUTH_PROXY_CONTAINER), None)
    if container is None:
        return None
    argv = _expanded_command(objects, workload, container)[0]
    port = (option(argv, "--listen") or "").rpartition(":")[2]
    return {"workload": ident(workload), "container": container, "argv": argv, "port": int(port) if port.isdigit() else None,
            "secret": mounted_secret(option(argv, "--tokens-file") or "", container, spec)}


def auth_proxy_routes(objects: list[dict], namespace: str | None) -> dict[tuple[str, int], dict]:
    """The (Service name, port) pairs of the namespace that lead to an auth proxy's listening
    port, each with that proxy (:func:`auth_proxy`)."""
    routes = {}
    for service in objects:
        if service.get("kind") != "Service" or service["metadata"].get("namespace") != namespace:
            continue
        for workload, _, _ in selected_pods(objects, service["spec"].get("selector"), namespace):
            proxy = auth_proxy(objects, workload)
            for port in service["spec"].get("ports", []) if proxy else []:
                if resolve_port(port.get("targetPort", port["port"]), proxy["container"]) == proxy["port"]:
                    routes[(service["metadata"]["name"], int(port["port"]))] = proxy
    return routes


def auth_proxy_problems(objects: list[dict]) -> list[str]:
    """TorchServe's pods have the auth-proxy sidecar (``arcscan auth-proxy``): it listens on one
    of its container ports, calls TorchServe's own inference and management addresses with the
    key_file.json in TorchServe's working directory (the same volume), takes its tokens from a
    Secret file, and a Service port and the NetworkPolicy's stream-client rule lead to it."""
    problems = []
    for obj, spec, labels in workloads(objects):
        if labels.get("app.kubernetes.io/component") != TORCHSERVE_COMPONENT:
            continue
        where, proxy, server = ident(obj), auth_proxy(objects, obj), torchserve_container(spec)
        if proxy is None or server is None:
            problems.append(f"{where}: no {AUTH_PROXY_CONTAINER} container next to the torchserve one")
            continue
        argv = proxy["argv"]
        if argv[:2] != ["arcscan", "auth-proxy"]:
            problems.append(f"{where} container {AUTH_PROXY_CONTAINER}: runs {argv[:2]}, not arcscan auth-proxy")
        if proxy["port"] is None or resolve_port(proxy["port"], proxy["container"]) is None:
            problems.append(f"{where}: the auth proxy's --listen {option(argv, '--listen')!r} is not one of its container ports")
        props = torchserve_properties(objects, obj)
        for name, key in (("--inference-url", "inference_address"), ("--management-url", "management_address")):
            if option(argv, name) != props.get(key):
                problems.append(f"{where}: the auth proxy's {name} {option(argv, name)!r} is not TorchServe's {key} {props.get(key)!r}")
        key_file, workdir = option(argv, "--key-file") or "", server.get("workingDir")
        server_mounts = {m["mountPath"]: m["name"] for m in server.get("volumeMounts", [])}
        proxy_mounts = {m["mountPath"]: m["name"] for m in proxy["container"].get("volumeMounts", [])}
        if key_file != f"{workdir}/key_file.json" or proxy_mounts.get(workdir) != server_mounts.get(workdir):
            problems.append(f"{where}: the auth proxy's --key-file {key_file!r} is not key_file.json in TorchServe's working "
                            f"directory {workdir} (mounted from the same volume)")
        if proxy["secret"] is None:
            problems.append(f"{where}: the auth proxy's --tokens-file {option(argv, '--tokens-file')!r} is not mounted from a Secret")
        namespace = obj["metadata"].get("namespace")
        if not any(route["workload"] == where for route in auth_proxy_routes(objects, namespace).values()):
            problems.append(f"{where}: no Service port leads to the auth proxy (port {proxy['port']})")
        admitted = set()  # the proxy's ports the stream clients may reach
        for policy in objects:
            if policy.get("kind") != "NetworkPolicy" or policy["metadata"].get("namespace") != namespace \
                    or not selects(policy["spec"].get("podSelector"), labels):
                continue
            for rule in policy["spec"].get("ingress", []) or []:
                peers = [(peer.get("podSelector") or {}).get("matchLabels", {}) for peer in rule.get("from", []) or []]
                if any(peer.get("app.kubernetes.io/component") == "stream-client" for peer in peers):
                    admitted |= {resolve_port(port.get("port"), proxy["container"]) for port in rule.get("ports", []) or []}
        if proxy["port"] not in admitted:
            problems.append(f"{where}: no NetworkPolicy admits the stream clients to the auth proxy (port {proxy['port']})")
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
                elif pod_labels.get("app.kubernetes.io/component") != "stream-client":
                    problems.append(f"{ident(policy)}: admits pods other than the stream clients: {pod_labels}")
    return problems


def stream_problems(objects: list[dict]) -> list[str]:
    """Stream clients: a Deployment per imager group (at least two), a ConfigMap with URL and
    concurrency, the URL a Service port that leads to TorchServe's auth proxy, the token from the
    Secret file that proxy accepts, the metrics port annotated for scraping (``cli_problems``
    runs the arguments through the real parser)."""
    problems = []
    streams = [(obj, spec, labels) for obj, spec, labels in workloads(objects)
               if labels.get("app.kubernetes.io/component") == "stream-client"]
    groups = {labels.get("arcscan.io/imager-group") for _, _, labels in streams}
    if len(streams) < 2 or len(groups - {None}) < 2:
        problems.append(f"fewer than two stream-client Deployments with distinct imager groups ({sorted(map(str, groups))})")
    for obj, spec, labels in streams:
        container = spec["containers"][0]
        expanded, values = _expanded_command(objects, obj, container)
        for key in ("ARCSCAN_URL", "CONCURRENCY", "WATCH_DIR"):
            if key not in values:
                problems.append(f"{ident(obj)}: {key} not configured (ConfigMap)")
        if unresolved := [a for a in expanded if re.search(r"\$\([A-Za-z_]", a)]:
            problems.append(f"{ident(obj)}: unresolved variables in the arguments: {unresolved}")
        if "--token" in expanded:
            problems.append(f"{ident(obj)}: --token puts the key on the command line; use --token-file")
        url = urlsplit(str(values.get("ARCSCAN_URL", "")))
        try:
            route = (url.hostname, url.port)
        except ValueError:
            route = None
        routes = auth_proxy_routes(objects, obj["metadata"].get("namespace"))
        if url.scheme != "http" or route not in routes or not url.path.startswith("/predictions/"):
            problems.append(f"{ident(obj)}: ARCSCAN_URL {values.get('ARCSCAN_URL')!r} is not /predictions/ on a Service port "
                            f"that leads to TorchServe's auth proxy ({sorted(routes)})")
        if "--token-file" in expanded:
            token_file = expanded[expanded.index("--token-file") + 1]
            secret = mounted_secret(token_file, container, spec)
            if secret is None:
                problems.append(f"{ident(obj)}: --token-file {token_file} is not mounted from a Secret")
            elif route in routes and secret != routes[route]["secret"]:
                problems.append(f"{ident(obj)}: --token-file comes from Secret {secret}, "
                                f"the auth proxy's tokens from {routes[route]['secret']}")
        else:
            problems.append(f"{ident(obj)}: no --token-file")
        annotations = pod_template(obj)["metadata"].get("annotations", {}) or {}
        port = expanded[expanded.index("--metrics-port") + 1] if "--metrics-port" in expanded else None
        if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != port or not port_exists(port or "", spec):
            problems.append(f"{ident(obj)}: metrics port {port} is not annotated for scraping / not a container port")
    return problems


def _expanded_command(objects: list[dict], obj: dict, container: dict) -> tuple[list[str], dict[str, str]]:
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


def arcscan_argv(objects: list[dict]) -> dict[str, list[str]]:
    """The command line of each stream client and auth proxy, $(VAR) expanded from its env and
    ConfigMaps."""
    out = {}
    for obj, spec, labels in workloads(objects):
        if labels.get("app.kubernetes.io/component") == "stream-client":
            out[ident(obj)] = _expanded_command(objects, obj, spec["containers"][0])[0]
        elif proxy := auth_proxy(objects, obj):
            out[f"{ident(obj)} container {AUTH_PROXY_CONTAINER}"] = proxy["argv"]
    return out


def cli_problems(argvs: dict[str, list[str]], parser) -> list[str]:
    """The real ``arcscan`` argument parser accepts each command line (``arcscan ...``)."""
    import contextlib
    import io

    problems = []
    for where, argv in argvs.items():
        if argv[:1] != ["arcscan"]:
            problems.append(f"{where}: does not run arcscan: {argv[:2]}")
            continue
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                parser.parse_args(argv[1:])
        except SystemExit:
            problems.append(f"{where}: arcscan rejects {argv[1:]}: {errors.getvalue().strip().splitlines()[-1]}")
    return problems


# ---------------------------------------------------------------------------------- MLflow


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


# ---------------------------------------------------------------------- config.properties


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


# ----------------------------------------------------------------------------- Dockerfiles


def dockerfile_problems(path: Path) -> list[str]:
    """Pinned base images (a version tag, not latest), a non-root USER and a HEALTHCHECK in the
    final stage, no credentials in ENV/ARG, COPY sources that exist (globs may match nothing)."""
    text = Path(path).read_text()
    lines = re.sub(r"\\\n", " ", text).splitlines()
    instructions = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if len(l.split(None, 1)) > 1 else "")
                    for l in (x.strip() for x in lines) if l and not l.startswith("#")]
    problems = []
    stages = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    if not stages:
        return [f"{path}: no FROM"]
    stage_names = set()
    for index in stages:
        words = instructions[index][1].split()
        image = words[0]
        if image in stage_names:
            continue
        if len(words) >= 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
        if "@sha256:" in image:
            continue
        tag = image.rsplit("/", 1)[-1].split(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None
        if tag is None or tag == "latest" or "$" in image or not re.search(r"\d+\.\d+", tag):
            problems.append(f"{path}: base image {image} is not pinned to a version tag")
    final = instructions[stages[-1]:]
    users = [arg for op, arg in final if op == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append(f"{path}: the final stage does not switch to a non-root USER")
    if not any(op == "HEALTHCHECK" and not arg.upper().startswith("NONE") for op, arg in final):
        problems.append(f"{path}: no HEALTHCHECK in the final stage")
    for op, arg in instructions:
        if op in {"ENV", "ARG"} and re.search(r"(PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY)\w*\s*=\s*\S", arg, re.I):
            problems.append(f"{path}: {op} {arg[:60]} bakes a credential into the image")
        if op in {"COPY", "ADD"} and "--from=" not in arg:
            sources = [s for s in arg.split() if not s.startswith("--")][:-1]
            if arg.strip().startswith("["):
                continue
            for source in sources:
                if not any(ch in source for ch in "*?[") and not (ROOT / source).exists():
                    problems.append(f"{path}: {op} source {source} does not exist in the repository")
        if op == "ADD" and re.search(r"https?://", arg):
            problems.append(f"{path}: ADD from a URL")
    return problems


def dockerignore_problems(path: Path, required: Iterable[str]) -> list[str]:
    entries = {line.strip().rstrip("/") for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")}
    return [f"{path}: does not exclude {entry}" for entry in required if entry.rstrip("/") not in entries]


# ------------------------------------------------------------------------------ Prometheus


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    found = tool("promtool")
    if not found:
        raise ToolMissing("promtool not found (bash k8s/install-tools.sh installs Debian's prometheus package)")
    return subprocess.run([found, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def promtool_check_config(config: Path) -> tuple[subprocess.CompletedProcess, str | None]:
    """``promtool check config``. Debian's promtool is built without Kubernetes service
    discovery and refuses ``kubernetes_sd_configs``; then the same file is checked with each
    kubernetes_sd_configs replaced by an empty file_sd_configs (the relabelling, rule files and
    everything else still go through promtool) and the SD blocks are checked here. The second
    value says when that fallback was used."""
    result = promtool("check", "config", str(config))
    if result.returncode == 0 or "kubernetes_sd_configs not found" not in result.stdout + result.stderr:
        return result, None
    doc = yaml.safe_load(Path(config).read_text())
    sd_problems = []
    with tempfile.TemporaryDirectory(prefix="arcscan-promtool-") as tmp:
        for job in doc.get("scrape_configs", []):
            for sd in job.pop("kubernetes_sd_configs", []) or []:
                if sd.get("role") not in {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}:
                    sd_problems.append(f"job {job.get('job_name')}: kubernetes_sd_configs role {sd.get('role')!r}")
                unknown = set(sd) - {"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"}
                if unknown:
                    sd_problems.append(f"job {job.get('job_name')}: unknown kubernetes_sd_configs fields {sorted(unknown)}")
                job.setdefault("file_sd_configs", []).append({"files": [str(Path(tmp) / "targets.json")]})
        for rule_file in doc.get("rule_files", []):
            shutil.copy(Path(config).parent / rule_file, Path(tmp) / Path(rule_file).name)
        (Path(tmp) / "prometheus.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
        fallback = promtool("check", "config", str(Path(tmp) / "prometheus.yml"))
    if sd_problems:
        fallback = subprocess.CompletedProcess(fallback.args, 1, fallback.stdout + "\n".join(sd_problems), fallback.stderr)
    return fallback, "promtool lacks Kubernetes SD (Debian build): kubernetes_sd_configs checked structurally"


def prometheus_rule_problems(rule_object: dict, alerts: dict) -> list[str]:
    """The operator's PrometheusRule carries exactly the groups of alerts.yml."""
    if rule_object.get("spec", {}).get("groups") != alerts.get("groups"):
        return ["k8s/monitoring/prometheusrule.yaml differs from alerts.yml: copy alerts.yml's groups into it"]
    return []


def mutate(objects: list[dict], kind: str, name: str, change) -> list[dict]:
    """A deep copy of ``objects`` with ``change(obj)`` applied to ``kind``/``name`` (tests)."""
    copied = copy.deepcopy(objects)
    targets = find(copied, kind, name)
    if not targets:
        raise KeyError(f"{kind}/{name} not rendered")
    for obj in targets:
        change(obj)
    return copied
