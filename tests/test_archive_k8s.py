"""The archive's KubeRay RayJob, offline: rendered by both overlays, valid against the RayJob
CRD's own openAPIV3Schema (jsonschema, strict; skipped, saying why, when the CRD file is not
here: ``k8s/checks/rayjob.py`` says where it is looked for), and what the job needs; broken
copies show that each check bites."""

from __future__ import annotations

import copy

import pytest

import k8s.checks as checks
from arcscan.cli import build_parser
from test_k8s import EXTERNAL_SECRETS, K8S, OVERLAYS, _need

PARSER = build_parser()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: _need(checks.render, K8S / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="module")
def schema() -> dict:
    path = checks.crd_path()
    if path is None:
        pytest.skip("the KubeRay RayJob CRD (ray.io_rayjobs.yaml) is not here: set ARCSCAN_KUBERAY_CRD or put it in ../shared/schemas/")
    return checks.crd_schema(path)


def _job(objects: list[dict]) -> dict:
    [job] = checks.find(objects, "RayJob", "arcscan-reprocess")
    return job


def _broken(objects: list[dict], change) -> list[dict]:
    objects = copy.deepcopy(objects)
    change(_job(objects))
    return objects


def _head(job: dict) -> dict:
    return job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]


def _worker(job: dict) -> dict:
    return job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_rayjob_renders_in_each_overlay_and_passes_the_archive_checks(rendered, overlay):
    job = _job(rendered[overlay])
    assert job["metadata"]["namespace"] == {"dev": "arcscan-dev", "prod": "arcscan"}[overlay]
    assert checks.rayjob_problems(rendered[overlay], PARSER, frozenset(EXTERNAL_SECRETS[overlay])) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_rayjob_validates_against_the_kuberay_crd_schema(rendered, schema, overlay):
    assert checks.rayjob_schema_problems(rendered[overlay], schema) == []


SCHEMA_BREAKS = {
    "misspelled field": (lambda job: job["spec"].__setitem__("entryPoint", job["spec"].pop("entrypoint")), "entryPoint"),
    "wrong type": (lambda job: job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].__setitem__("replicas", "four"), "'four' is not of type 'integer'"),
    "unknown field in a pod": (lambda job: _head(job)["containers"][0].__setitem__("imagePolicy", "Always"), "imagePolicy"),
    "missing required field": (lambda job: job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].pop("groupName"), "'groupName' is a required property"),
    "other api version": (lambda job: job.__setitem__("apiVersion", "ray.io/v1alpha1"), "is not ray.io/v1"),
}


@pytest.mark.parametrize("case", SCHEMA_BREAKS)
def test_a_broken_rayjob_is_caught_by_the_crd_schema(rendered, schema, case):
    change, fragment = SCHEMA_BREAKS[case]
    problems = checks.rayjob_schema_problems(_broken(rendered["dev"], change), schema)
    assert any(fragment in p for p in problems), problems


def _unmount(path: str, spec_of):
    def change(job):
        for container in spec_of(job)["containers"]:
            container["volumeMounts"] = [m for m in container["volumeMounts"] if m["mountPath"] != path]
    return change


SEMANTIC_BREAKS = {
    "foreign image": (lambda job: _worker(job)["containers"][0].__setitem__("image", "rayproject/ray:2.60.0"), "image family"),
    "no resources": (lambda job: _worker(job)["containers"][0].pop("resources"), "requests and limits"),
    "archive not on the workers": (_unmount("/archive", _worker), "/archive is not mounted"),
    "archive writable": (lambda job: _head(job)["containers"][0]["volumeMounts"][0].pop("readOnly"), "/archive must be mounted read-only"),
    "catalog read-only": (lambda job: _worker(job)["containers"][0]["volumeMounts"][1].__setitem__("readOnly", True), "/catalog must be mounted writable"),
    "ray version drift": (lambda job: job["spec"]["rayClusterSpec"].__setitem__("rayVersion", "2.9.0"), "not the pinned 2.60.0"),
    "bad option": (lambda job: job["spec"].__setitem__("entrypoint", job["spec"]["entrypoint"] + " --workerz 4"), "refuses the entrypoint"),
    "another command": (lambda job: job["spec"].__setitem__("entrypoint", "python -m arcscan.archive"), "not an `arcscan reprocess` command"),
    "other paths": (lambda job: job["spec"].__setitem__("entrypoint", job["spec"]["entrypoint"].replace("/catalog", "/tmp/catalog")), "writes /tmp/catalog"),
    "registry not wired": (lambda job: _head(job)["containers"][0].__setitem__("env", []), "MLFLOW_TRACKING_URI"),
    "unrewritten secret name": (lambda job: _head(job)["containers"][0]["env"][1]["valueFrom"]["secretKeyRef"].__setitem__("name", "arcscan-mlflow-reader"), "MLFLOW_TRACKING_USERNAME from an existing Secret"),
}


@pytest.mark.parametrize("case", SEMANTIC_BREAKS)
def test_a_broken_rayjob_is_caught_by_the_archive_checks(rendered, case):
    change, fragment = SEMANTIC_BREAKS[case]
    problems = checks.rayjob_problems(_broken(rendered["dev"], change), PARSER)
    assert any(fragment in p for p in problems), problems


def test_manifests_without_a_rayjob_are_caught(rendered):
    assert checks.rayjob_problems([o for o in rendered["dev"] if o["kind"] != "RayJob"], PARSER) == ["no RayJob (the archive job) in the manifests"]
