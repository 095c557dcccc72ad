"""Policies every manifest and pod follows: recommended labels and namespaces, pinned images,
selectors and references that point at something, probes, the restricted security profile, and
which checkov findings count as problems."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .auth_proxy import torchserve_token_ports
from .constants import TORCHSERVE_COMPONENT
from .objects import containers, find, ident, pod_template, port_exists, selected_pods, selects, workloads

LONG_RUNNING_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                        "CustomResourceDefinition", "PriorityClass"}
REQUIRED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of")


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
        if obj["kind"] in LONG_RUNNING_KINDS and not selects(obj["spec"].get("selector"), labels):
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
