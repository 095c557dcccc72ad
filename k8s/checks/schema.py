"""Schemas: strict kubernetes-validate of every object, and the Prometheus-operator CRs (no
bundled schema) checked by hand."""

from __future__ import annotations

from collections.abc import Iterable

from .objects import ident, port_exists, selected_pods, selects

KUBERNETES_VERSION = "1.33.0"  # the schema version objects must validate against (strict)
OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}  # monitoring.coreos.com CRDs
RAY_KINDS = {"RayJob"}  # ray.io CRDs: validated against the KubeRay CRD's own schema (rayjob.py), never here


def schema_problems(objects: list[dict], version: str = KUBERNETES_VERSION, skip_kinds: Iterable[str] = ()) -> list[str]:
    """Strict validation of every object against the Kubernetes ``version`` schema
    (misspelled or unknown fields, wrong types, missing required fields). Kinds in
    ``skip_kinds`` (CRDs without a bundled schema) are left out explicitly."""
    import kubernetes_validate

    skip = set(skip_kinds) | RAY_KINDS
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
