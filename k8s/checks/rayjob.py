"""The archive's KubeRay ``RayJob``: validated against the RayJob CRD's own ``openAPIV3Schema``
(jsonschema, strict: unknown fields are errors, as the API server's strict field validation
makes them), and what the job needs: the project's image family, resources on every container,
the archive mounted read-only and the catalog writable in every Ray pod, the registry wired into
the driver (names of rendered objects: kustomize must rewrite them, k8s/base/archive/kustomizeconfig.yaml), Ray's version the one the project pins, the entrypoint an ``arcscan reprocess``
command line the real CLI parser accepts (the parser is passed in).

The CRD is KubeRay's (``helm-chart/kuberay-operator/crds/ray.io_rayjobs.yaml`` of
ray-project/kuberay; checked with v1.7.0). It is not part of this repository: :func:`crd_path`
finds it from ``ARCSCAN_KUBERAY_CRD`` or in ``../shared/schemas/`` beside the repository.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import shlex
from pathlib import Path

import yaml

from .constants import ROOT
from .objects import ident

CRD_NAME = "ray.io_rayjobs.yaml"
RAY_VERSION = "2.60.0"  # pyproject.toml: ray[data]==2.60.0
ARCHIVE, CATALOG = "/archive", "/catalog"


def crd_path() -> Path | None:
    """Where the RayJob CRD is: ``ARCSCAN_KUBERAY_CRD``, else ``../shared/schemas/<CRD_NAME>``."""
    candidates = [Path(os.environ["ARCSCAN_KUBERAY_CRD"])] if os.environ.get("ARCSCAN_KUBERAY_CRD") else []
    candidates.append(ROOT.parent / "shared" / "schemas" / CRD_NAME)
    return next((path for path in candidates if path.is_file()), None)


def _strict(schema: dict) -> dict:
    """The schema with ``additionalProperties: false`` on every object that lists its
    properties and does not preserve unknown fields (what strict field validation does)."""
    schema = copy.deepcopy(schema)
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if "properties" in node and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for value in node.values():
            stack.extend(value if isinstance(value, list) else [value])
    return schema


def crd_schema(path: Path, version: str = "v1") -> dict:
    """The ``openAPIV3Schema`` of a CRD file's ``version``, made strict."""
    crd = yaml.safe_load(path.read_text())
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return _strict(served["schema"]["openAPIV3Schema"])


def rayjob_schema_problems(objects: list[dict], schema: dict) -> list[str]:
    """Every RayJob against the CRD schema: misspelled or unknown fields, wrong types,
    missing required fields."""
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    problems = []
    for obj in (o for o in objects if o.get("kind") == "RayJob"):
        if obj.get("apiVersion") != "ray.io/v1":
            problems.append(f"{ident(obj)}: apiVersion {obj.get('apiVersion')} is not ray.io/v1")
        body = {k: v for k, v in obj.items() if k != "metadata"}  # metadata is the API server's (ObjectMeta)
        for error in sorted(validator.iter_errors(body), key=lambda e: list(e.path)):
            problems.append(f"{ident(obj)}: {'/'.join(map(str, error.path))}: {error.message}")
    return problems


def _pods(obj: dict) -> list[tuple[str, dict]]:
    cluster = obj.get("spec", {}).get("rayClusterSpec", {})
    pods = [("head", cluster.get("headGroupSpec", {}).get("template", {}).get("spec", {}))]
    pods += [(f"worker group {g.get('groupName')}", g.get("template", {}).get("spec", {})) for g in cluster.get("workerGroupSpecs", [])]
    return pods


def _mount(path: str, container: dict, spec: dict) -> tuple[dict | None, dict | None]:
    mount = next((m for m in container.get("volumeMounts", []) if m.get("mountPath") == path), None)
    volume = next((v for v in spec.get("volumes", []) if mount and v.get("name") == mount.get("name")), None)
    return mount, volume


def rayjob_problems(objects: list[dict], parser, external_secrets: frozenset[str] = frozenset()) -> list[str]:
    """What the archive job needs of its RayJob (module doc); ``parser`` is
    ``arcscan.cli.build_parser()``; ``external_secrets`` exist in the cluster already."""
    jobs = [o for o in objects if o.get("kind") == "RayJob"]
    if not jobs:
        return ["no RayJob (the archive job) in the manifests"]
    claims = {o["metadata"]["name"] for o in objects if o.get("kind") == "PersistentVolumeClaim"}
    config_maps = {o["metadata"]["name"] for o in objects if o.get("kind") == "ConfigMap"}
    secrets = {o["metadata"]["name"] for o in objects if o.get("kind") == "Secret"} | set(external_secrets)
    training = [c["image"] for o in objects if o.get("kind") == "Job" for c in o["spec"]["template"]["spec"]["containers"]]
    family = {image.rsplit("/", 1)[0] + ":" + image.rsplit(":", 1)[-1] for image in training}  # registry path and tag
    problems = []
    for job in jobs:
        spec = job.get("spec", {})
        if spec.get("rayClusterSpec", {}).get("rayVersion") != RAY_VERSION:
            problems.append(f"{ident(job)}: rayVersion {spec.get('rayClusterSpec', {}).get('rayVersion')} is not the pinned {RAY_VERSION}")
        argv = shlex.split(spec.get("entrypoint", ""))
        if argv[:1] != ["arcscan"] or "reprocess" not in argv:
            problems.append(f"{ident(job)}: entrypoint is not an `arcscan reprocess` command: {spec.get('entrypoint')!r}")
        else:
            with contextlib.redirect_stderr(io.StringIO()) as errors:
                try:
                    args = parser.parse_args(argv[1:])
                except SystemExit:
                    problems.append(f"{ident(job)}: the arcscan CLI refuses the entrypoint: {errors.getvalue().strip().splitlines()[-1:]}")
                    args = None
            if args is not None and (args.archive.rstrip("/") != ARCHIVE or args.output.rstrip("/") != CATALOG):
                problems.append(f"{ident(job)}: entrypoint reads {args.archive} and writes {args.output}, not {ARCHIVE} and {CATALOG}")
            if args is not None and args.alias:
                head = _pods(job)[0][1].get("containers", [{}])[0]
                env = {e["name"]: e.get("valueFrom", {}) for e in head.get("env", [])}
                if env.get("MLFLOW_TRACKING_URI", {}).get("configMapKeyRef", {}).get("name") not in config_maps:
                    problems.append(f"{ident(job)}: --alias needs MLFLOW_TRACKING_URI from an existing ConfigMap on the head (the driver)")
                for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                    if env.get(key, {}).get("secretKeyRef", {}).get("name") not in secrets:
                        problems.append(f"{ident(job)}: --alias needs {key} from an existing Secret on the head")
        for where, pod in _pods(job):
            for container in pod.get("containers", []):
                name = f"{ident(job)} {where} {container.get('name')}"
                image = container.get("image", "")
                if family and image.rsplit("/", 1)[0] + ":" + image.rsplit(":", 1)[-1] not in family:
                    problems.append(f"{name}: image {image} is not of the project's image family {sorted(family)}")
                resources = container.get("resources", {})
                if not all(resources.get(kind, {}).get(r) for kind in ("requests", "limits") for r in ("cpu", "memory")):
                    problems.append(f"{name}: cpu and memory requests and limits are required")
                for path, writable in ((ARCHIVE, False), (CATALOG, True)):
                    mount, volume = _mount(path, container, pod)
                    claim = (volume or {}).get("persistentVolumeClaim", {}).get("claimName")
                    if claim not in claims:
                        problems.append(f"{name}: {path} is not mounted from an existing PersistentVolumeClaim")
                    elif bool(mount.get("readOnly")) == writable:
                        problems.append(f"{name}: {path} must be mounted {'writable' if writable else 'read-only'}")
    return problems
