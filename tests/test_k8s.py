"""Offline checks of the deployment: container images, Kubernetes manifests, Prometheus.

Every overlay renders with kustomize, validates strictly against the Kubernetes schema, passes
checkov, and passes the semantic checks of ``k8s.checks``; Prometheus' configuration,
rules and rule unit tests pass promtool. The second half feeds broken copies to the same check
functions to show that each kind of mistake is caught.

Tools come from ``bash k8s/install-tools.sh`` (``.tools/bin`` or PATH); a test skips, saying
why, only when its tool is not installed.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import k8s.checks as checks

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
MONITORING = K8S / "monitoring"
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "arcscan-dev", "prod": "arcscan"}
# Secrets that prod expects to exist already (kubectl create secret, README), never committed.
EXTERNAL_SECRETS = {"dev": set(), "prod": {"arcscan-postgres", "arcscan-stream-token", "arcscan-mlflow-auth",
                                           "arcscan-mlflow-trainer", "arcscan-mlflow-reader"}}
DOCKERFILES = ("containers/Dockerfile",)  # one file, one target stage per image
DOCKERIGNORE_REQUIRED = (".venv", ".git", "mlflow/store", "data", ".dvc/cache", "runs", "serving/run",
                         "serving/model-store", "reports/overlays", "patches", "models", ".tools")


def _need(fn, *args, **kwargs):
    """Call a check that needs a tool; skip (with the reason) when the tool is missing."""
    try:
        return fn(*args, **kwargs)
    except checks.ToolMissing as missing:
        pytest.skip(str(missing))


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list[dict]]:
    """Rendered objects of each overlay, and of prod with the optional components."""
    out = {name: _need(checks.render, K8S / "overlays" / name) for name in OVERLAYS}
    base = tmp_path_factory.mktemp("variants")
    gpu = checks.compose(base / "prod-gpu", [K8S / "overlays" / "prod"], [K8S / "components" / "gpu"], namespace="arcscan")
    operator = checks.compose(base / "prod-operator", [K8S / "overlays" / "prod"], [MONITORING], namespace="arcscan")
    out["prod+gpu"] = checks.render(gpu)
    out["prod+operator"] = checks.render(operator)
    return out


@pytest.fixture(scope="module")
def checkov_reports() -> dict[str, dict]:
    """checkov once per overlay (it is the slow part), shared by the tests below."""
    return {name: _need(checks.checkov_report, K8S / "overlays" / name) for name in OVERLAYS}


def _torchserve(objects):
    [deployment] = checks.find(objects, "Deployment", "arcscan-torchserve")
    return deployment


def _configmap_properties(objects) -> str:
    [cm] = checks.find(objects, "ConfigMap", "arcscan-torchserve-config")
    return cm["data"]["config.properties"]


# --------------------------------------------------------------------- the real manifests


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_with_namespace_and_every_part(rendered, overlay):
    objects = rendered[overlay]
    kinds = {(o["kind"], re.sub(r"-[a-z0-9]{10}$", "", o["metadata"]["name"]) if o["kind"] in {"ConfigMap", "Secret"}
              else o["metadata"]["name"]) for o in objects}
    for expected in [
        ("Deployment", "arcscan-torchserve"), ("Service", "arcscan-torchserve"),
        ("HorizontalPodAutoscaler", "arcscan-torchserve"), ("PodDisruptionBudget", "arcscan-torchserve"),
        ("NetworkPolicy", "arcscan-torchserve"), ("ConfigMap", "arcscan-torchserve-config"),
        ("Deployment", "arcscan-mlflow"), ("Service", "arcscan-mlflow"), ("PersistentVolumeClaim", "arcscan-mlflow-artifacts"),
        ("StatefulSet", "arcscan-postgres"), ("Service", "arcscan-postgres"),
        ("Job", "arcscan-train"), ("CronJob", "arcscan-retrain"),
        ("Deployment", "arcscan-stream-west"), ("Deployment", "arcscan-stream-east"),
    ]:
        assert expected in kinds, f"{expected} missing from {overlay}"
    assert {o["metadata"].get("namespace") for o in objects} == {NAMESPACES[overlay]}
    assert checks.find(objects, "StatefulSet", "arcscan-postgres")[0]["spec"]["volumeClaimTemplates"]


@pytest.mark.parametrize("variant", ["dev", "prod", "prod+gpu"])
def test_every_object_validates_strictly_against_the_kubernetes_schema(rendered, variant):
    assert checks.schema_problems(rendered[variant]) == []


def test_operator_variant_validates_with_crds_skipped_explicitly(rendered):
    objects = rendered["prod+operator"]
    crds = [o for o in objects if o["kind"] in checks.OPERATOR_KINDS]
    assert {o["kind"] for o in crds} == {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert checks.schema_problems(objects, skip_kinds=checks.OPERATOR_KINDS) == []
    assert checks.operator_resource_problems(objects) == []
    assert checks.label_problems(crds) == []
    # kubernetes-validate itself refuses the CRDs: skipping them is a decision, not an accident
    assert checks.schema_problems(crds[:1]) != []


def test_prometheus_rule_carries_the_alerts_of_alerts_yml():
    [rule] = checks.load_objects((MONITORING / "prometheusrule.yaml").read_text())
    alerts = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    assert checks.prometheus_rule_problems(rule, alerts) == []


def test_gpu_component_only_where_enabled(rendered):
    gpu = checks.pod_template(_torchserve(rendered["prod+gpu"]))["spec"]
    cpu = checks.pod_template(_torchserve(rendered["prod"]))["spec"]
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu["tolerations"])
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nodeSelector" not in cpu and "nvidia.com/gpu" not in cpu["containers"][0]["resources"]["limits"]


def test_dev_is_one_small_replica_and_prod_scales(rendered):
    for obj in rendered["dev"]:
        if obj["kind"] in {"Deployment", "StatefulSet"}:
            assert obj["spec"]["replicas"] == 1, checks.ident(obj)
    [dev_hpa], [prod_hpa] = (checks.find(rendered[o], "HorizontalPodAutoscaler") for o in OVERLAYS)
    assert dev_hpa["spec"]["maxReplicas"] == 1
    assert prod_hpa["apiVersion"] == "autoscaling/v2" and prod_hpa["spec"]["minReplicas"] >= 2
    assert prod_hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    prod_ts = _torchserve(rendered["prod"])["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert prod_ts["requests"]["cpu"] == prod_ts["limits"]["cpu"] == "2"
    for obj in rendered["prod"]:
        if checks.pod_template(obj):
            for container in checks.containers(checks.pod_template(obj)["spec"]):
                image = container["image"]
                assert image.startswith("registry.example.org/") or image.startswith("postgres:"), image


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_passes_offline_with_justified_skips_only(checkov_reports, overlay):
    report = checkov_reports[overlay]
    assert checks.checkov_problems(report) == []
    assert report["passed"] > 300  # it really scanned the rendered workloads
    assert {check for check, _, _ in report["skipped_checks"]} <= {"CKV_K8S_43", "CKV_K8S_35"}


def test_checkov_passes_on_the_dockerfiles():
    report = _need(checks.checkov_report, ROOT, framework="dockerfile", files=[ROOT / f for f in DOCKERFILES])
    assert checks.checkov_problems(report) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_semantics(rendered, overlay):
    objects = rendered[overlay]
    problems = (
        checks.label_problems(objects)
        + checks.image_problems(objects)
        + checks.selector_problems(objects)
        + checks.probe_problems(objects)
        + checks.security_problems(objects)
        + checks.reference_problems(objects, EXTERNAL_SECRETS[overlay])
        + checks.torchserve_problems(objects)
        + checks.auth_proxy_problems(objects)
        + checks.stream_problems(objects)
        + checks.mlflow_auth_problems(objects)
        + checks.mlflow_client_problems(objects)
    )
    assert problems == []


def test_the_cluster_writes_the_auth_ini_arcscan_writes_locally(rendered, tmp_path):
    """MLflow's init container writes what arcscan.mlops.write_auth_config writes for
    ``arcscan mlflow-server --auth`` (the same app, default permission and admin), with the
    PostgreSQL URI from the arcscan-postgres Secret's variables."""
    from arcscan import mlops

    spec = checks.pod_template(checks.find(rendered["prod"], "Deployment", "arcscan-mlflow")[0])["spec"]
    [init] = spec["initContainers"]
    config = Path(next(e["value"] for e in checks.mlflow_server_container(spec)["env"] if e["name"] == "MLFLOW_AUTH_CONFIG_PATH"))
    script = init["args"][0].replace(str(config.parent), str(tmp_path))
    secret = {"POSTGRES_USER": "mlflow", "POSTGRES_PASSWORD": "0123abcd", "POSTGRES_DB": "mlflow"}
    subprocess.run([*init["command"], script], env={"PATH": os.environ["PATH"], **secret}, check=True, timeout=30)
    expected = mlops.write_auth_config(tmp_path / "expected.ini", "postgresql+psycopg2://mlflow:0123abcd@arcscan-postgres:5432/mlflow")
    assert (tmp_path / config.name).read_text() == expected.read_text()
    assert checks.MLFLOW_AUTH_APP == mlops.AUTH_APP


def test_stream_client_and_auth_proxy_arguments_are_accepted_by_the_arcscan_cli(rendered):
    from arcscan.cli import build_parser

    parser = build_parser()
    for overlay in OVERLAYS:
        argvs = checks.arcscan_argv(rendered[overlay])
        assert {where.split(" ")[0] for where in argvs} == {
            "Deployment/arcscan-stream-west", "Deployment/arcscan-stream-east", "Deployment/arcscan-torchserve"}
        assert checks.cli_problems(argvs, parser) == []


def test_stream_clients_reach_torchserve_only_through_the_auth_proxy(rendered):
    for overlay in OVERLAYS:
        objects = rendered[overlay]
        [service] = checks.find(objects, "Service", "arcscan-torchserve")
        assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"inference": 8443, "metrics": 8082}
        pod = checks.pod_template(_torchserve(objects))["spec"]
        assert [c["name"] for c in pod["containers"]] == ["torchserve", checks.AUTH_PROXY_CONTAINER]
        assert checks.container_ports(pod) == ({"inference", "metrics"}, {8443, 8082})  # TorchServe's 8080/8081: loopback only
        proxy = checks.auth_proxy(objects, _torchserve(objects))
        assert proxy["port"] == 8443 and re.fullmatch(r"arcscan-stream-token(-[a-z0-9]{10})?", proxy["secret"])  # dev: generated
        key_file_mount = next(m for m in proxy["container"]["volumeMounts"] if m["mountPath"] == "/home/model-server/run")
        assert key_file_mount["readOnly"] is True


def test_no_real_credentials_in_the_repository(rendered):
    assert checks.find(rendered["prod"], "Secret") == []  # created with kubectl, see the README
    for secret in checks.find(rendered["dev"], "Secret"):
        import base64

        values = [base64.b64decode(v).decode() for v in secret["data"].values()]
        assert any("placeholder" in v for v in values), checks.ident(secret)


def test_config_properties_keep_the_safe_settings(rendered):
    repo = (ROOT / "serving" / "config.properties").read_text()
    assert checks.config_properties_problems(repo) == []
    for overlay in OVERLAYS:
        cluster = _configmap_properties(rendered[overlay])
        assert checks.config_properties_problems(cluster) == []
        assert checks.derived_config_problems(repo, cluster) == []
        props = checks.parse_properties(cluster)
        assert props["inference_address"] == "http://127.0.0.1:8080" and props["management_address"] == "http://127.0.0.1:8081"
        assert props["metrics_address"] == "http://0.0.0.0:8082"  # Prometheus scrapes it from outside the pod


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfiles_are_pinned_non_root_and_healthchecked(dockerfile):
    assert checks.dockerfile_problems(ROOT / dockerfile) == []


def test_every_arcscan_image_of_the_manifests_is_a_dockerfile_target(rendered):
    targets = set(checks.dockerfile_targets(ROOT / "containers" / "Dockerfile"))
    used = {c["image"].split(":")[0].removeprefix("arcscan/") for objects in rendered.values() for obj in objects
            if (template := checks.pod_template(obj)) for c in checks.containers(template["spec"])
            if c["image"].startswith("arcscan/")}
    assert used and used <= targets, used - targets


def test_dockerignore_keeps_caches_and_outputs_out_of_the_context():
    assert checks.dockerignore_problems(ROOT / ".dockerignore", DOCKERIGNORE_REQUIRED) == []


def test_requirements_lock_pins_torch_by_arbitrary_equality():
    lock = (ROOT / "requirements.lock").read_text()
    assert re.search(r"^torch===\d", lock, re.M) and re.search(r"^torchvision===\d", lock, re.M)


def test_promtool_check_config():
    result, fallback = _need(checks.promtool_check_config, MONITORING / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    if fallback:
        print(fallback)


def test_promtool_check_rules():
    result = _need(checks.promtool, "check", "rules", str(MONITORING / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules():
    result = _need(checks.promtool, "test", "rules", "alerts_test.yml", cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# ------------------------------------------------------------------- the checks bite


def _container(obj, name=None):
    spec = checks.pod_template(obj)["spec"]
    return next(c for c in spec["containers"] if name is None or c["name"] == name)


def _set_arg(container, name, value):
    container["args"][container["args"].index(name) + 1] = value


def _literal_env(container, name, value):
    container["env"] = [{"name": name, "value": value} if e["name"] == name else e for e in container["env"]]


def _drop_env(container, names):
    container["env"] = [e for e in container["env"] if e["name"] not in names]


def _replace_volume(name, source):
    def change(obj):
        volumes = checks.pod_template(obj)["spec"]["volumes"]
        volumes[:] = [{"name": name, **source} if v["name"] == name else v for v in volumes]
    return change


def _set_image(tag):
    def change(obj):
        image = _container(obj)["image"].rsplit(":", 1)[0]
        _container(obj)["image"] = f"{image}:{tag}" if tag else image
    return change


BROKEN = {
    # name: (kind, name, change, check, expected fragment)
    "misspelled field": ("Deployment", "arcscan-torchserve",
                         lambda o: _container(o).update(imagePullPolcy="Always"), "schema", "imagePullPolcy"),
    "wrong type": ("Deployment", "arcscan-mlflow", lambda o: o["spec"].update(replicas="two"), "schema", "replicas"),
    "unknown top-level field": ("Service", "arcscan-torchserve", lambda o: o["spec"].update(selectr={}), "schema", "selectr"),
    "wrong Service targetPort": ("Service", "arcscan-torchserve",
                                 lambda o: o["spec"]["ports"][0].update(targetPort="inferense"), "selector", "inferense"),
    "wrong probe port": ("Deployment", "arcscan-torchserve",
                         lambda o: _container(o, "auth-proxy")["livenessProbe"]["tcpSocket"].update(port=8081), "probe", "8081"),
    "tcpSocket probe on TorchServe's loopback port": (
        "Deployment", "arcscan-torchserve",
        lambda o: _container(o).update(readinessProbe={"tcpSocket": {"port": 8080}}), "probe", "8080"),
    "missing readiness probe": ("Deployment", "arcscan-mlflow", lambda o: _container(o).pop("readinessProbe"), "probe",
                                "no readinessProbe"),
    "missing liveness probe": ("StatefulSet", "arcscan-postgres", lambda o: _container(o).pop("livenessProbe"), "probe",
                               "no livenessProbe"),
    "HTTP probe on the token-protected port": (
        "Deployment", "arcscan-torchserve",
        lambda o: _container(o).update(readinessProbe={"httpGet": {"path": "/ping", "port": 8080}}), "probe",
        "token-protected"),
    "HTTP probe on the auth proxy": (
        "Deployment", "arcscan-torchserve",
        lambda o: _container(o, "auth-proxy").update(readinessProbe={"httpGet": {"path": "/ping", "port": "inference"}}), "probe",
        "token-protected"),
    "latest tag": ("Deployment", "arcscan-torchserve", _set_image("latest"), "image", "not pinned"),
    "untagged image": ("Deployment", "arcscan-stream-west", _set_image(None), "image", "no tag"),
    "HPA target missing": ("HorizontalPodAutoscaler", "arcscan-torchserve",
                           lambda o: o["spec"]["scaleTargetRef"].update(name="arcscan-torchserv"), "selector", "scaleTargetRef"),
    "PDB selects nothing": ("PodDisruptionBudget", "arcscan-torchserve",
                            lambda o: o["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/component": "torch"}),
                            "selector", "PodDisruptionBudget"),
    "selector does not match pod labels": ("Deployment", "arcscan-mlflow",
                                           lambda o: o["spec"]["selector"]["matchLabels"].update(extra="x"), "selector",
                                           "pod template labels"),
    "NetworkPolicy misses TorchServe": ("NetworkPolicy", "arcscan-torchserve",
                                        lambda o: o["spec"]["podSelector"]["matchLabels"].update(
                                            {"app.kubernetes.io/component": "torch-serve"}), "torchserve", "no NetworkPolicy"),
    "NetworkPolicy admits everyone": ("NetworkPolicy", "arcscan-torchserve",
                                      lambda o: o["spec"]["ingress"].append({"ports": [{"port": "inference"}]}), "torchserve",
                                      "admits everyone"),
    "Secret not defined": ("Deployment", "arcscan-mlflow",
                           lambda o: _container(o)["env"][0]["valueFrom"]["secretKeyRef"].update(name="mlflow-db"), "refs",
                           "mlflow-db"),
    "ConfigMap not defined": ("Deployment", "arcscan-stream-east",
                              lambda o: _container(o)["envFrom"][0]["configMapRef"].update(name="stream-settings"), "refs",
                              "stream-settings"),
    "root allowed": ("Deployment", "arcscan-torchserve",
                     lambda o: checks.pod_template(o)["spec"]["securityContext"].pop("runAsNonRoot"), "security", "runAsNonRoot"),
    "writable root file system": ("Deployment", "arcscan-stream-west",
                                  lambda o: _container(o)["securityContext"].update(readOnlyRootFilesystem=False), "security",
                                  "readOnlyRootFilesystem"),
    "no memory limit": ("StatefulSet", "arcscan-postgres",
                        lambda o: _container(o)["resources"]["limits"].pop("memory"), "security", "no memory limit"),
    "init container packages the challenger": (
        "Deployment", "arcscan-torchserve",
        lambda o: checks.pod_template(o)["spec"]["initContainers"][0]["command"].__setitem__(3, "challenger"), "torchserve",
        "challenger"),
    "key file directory read-only": (
        "Deployment", "arcscan-torchserve",
        lambda o: next(m for m in _container(o)["volumeMounts"] if m["name"] == "run").update(readOnly=True), "torchserve",
        "key_file.json"),
    "metrics annotation on the wrong port": (
        "Deployment", "arcscan-stream-east",
        lambda o: checks.pod_template(o)["metadata"]["annotations"].update({"prometheus.io/port": "9101"}), "stream",
        "annotated"),
    "token on the command line": (
        "Deployment", "arcscan-stream-west",
        lambda o: _container(o)["args"].__setitem__(_container(o)["args"].index("--token-file"), "--token"), "stream", "--token"),
    "stream URL past the auth proxy": (
        "ConfigMap", "arcscan-stream-east",
        lambda o: o["data"].update(ARCSCAN_URL="http://arcscan-torchserve:8080/predictions/arcscan"), "stream",
        "leads to TorchServe's auth proxy"),
    "stream token from another Secret": (
        "Deployment", "arcscan-stream-west",
        lambda o: next(v for v in checks.pod_template(o)["spec"]["volumes"] if "secret" in v)["secret"].update(
            secretName="arcscan-inference-token"), "stream", "the auth proxy's tokens from"),
    "Service targets TorchServe instead of the proxy": (
        "Service", "arcscan-torchserve", lambda o: o["spec"]["ports"][0].update(targetPort=8080), "auth-proxy",
        "no Service port leads to the auth proxy"),
    "NetworkPolicy admits the stream clients elsewhere": (
        "NetworkPolicy", "arcscan-torchserve", lambda o: o["spec"]["ingress"][0]["ports"][0].update(port=8080), "auth-proxy",
        "no NetworkPolicy admits the stream clients to the auth proxy"),
    "no auth proxy": (
        "Deployment", "arcscan-torchserve",
        lambda o: checks.pod_template(o)["spec"]["containers"].pop(1), "auth-proxy", "no auth-proxy container"),
    "auth proxy forwards past TorchServe": (
        "Deployment", "arcscan-torchserve",
        lambda o: _set_arg(_container(o, "auth-proxy"), "--inference-url", "http://127.0.0.1:8090"), "auth-proxy",
        "is not TorchServe's inference_address"),
    "auth proxy reads another key file": (
        "Deployment", "arcscan-torchserve",
        lambda o: _set_arg(_container(o, "auth-proxy"), "--key-file", "/tmp/key_file.json"), "auth-proxy",
        "not key_file.json in TorchServe's working directory"),
    "auth proxy listens on no container port": (
        "Deployment", "arcscan-torchserve",
        lambda o: _set_arg(_container(o, "auth-proxy"), "--listen", "0.0.0.0:9443"), "auth-proxy", "is not one of its container ports"),
    "auth proxy tokens not from a Secret": (
        "Deployment", "arcscan-torchserve",
        lambda o: _set_arg(_container(o, "auth-proxy"), "--tokens-file", "/tmp/tokens"), "auth-proxy", "is not mounted from a Secret"),
    "MLflow without the auth app": (
        "Deployment", "arcscan-mlflow",
        lambda o: _container(o).update(args=[a for a in _container(o)["args"] if a not in {"--app-name", "basic-auth"}]),
        "mlflow-auth", "without --app-name basic-auth"),
    "MLflow admin password as a literal": (
        "Deployment", "arcscan-mlflow", lambda o: _literal_env(_container(o), "MLFLOW_AUTH_ADMIN_PASSWORD", "hunter2hunter2"),
        "mlflow-auth", "MLFLOW_AUTH_ADMIN_PASSWORD is not from a Secret"),
    "auth ini from a ConfigMap": (
        "Deployment", "arcscan-mlflow", _replace_volume("auth-config", {"configMap": {"name": "arcscan-settings"}}),
        "mlflow-auth", "neither on a Secret volume"),
    "auth ini on the node's disk": (
        "Deployment", "arcscan-mlflow", _replace_volume("auth-config", {"emptyDir": {}}), "mlflow-auth",
        "neither on a Secret volume"),
    "MLflow probe behind the login": (
        "Deployment", "arcscan-mlflow",
        lambda o: _container(o)["readinessProbe"]["httpGet"].update(path="/api/2.0/mlflow/experiments/search"),
        "mlflow-auth", "only after a login"),
    "training password as a literal": (
        "CronJob", "arcscan-retrain", lambda o: _literal_env(_container(o), "MLFLOW_TRACKING_PASSWORD", "hunter2hunter2"),
        "mlflow-clients", "MLFLOW_TRACKING_PASSWORD is not from a Secret"),
    "TorchServe's init container without MLflow credentials": (
        "Deployment", "arcscan-torchserve",
        lambda o: _drop_env(checks.pod_template(o)["spec"]["initContainers"][0], checks.MLFLOW_CREDENTIALS), "mlflow-clients",
        "MLFLOW_TRACKING_USERNAME is not from a Secret"),
}

CHECK_FUNCTIONS = {
    "schema": checks.schema_problems,
    "selector": checks.selector_problems,
    "probe": checks.probe_problems,
    "image": checks.image_problems,
    "refs": checks.reference_problems,
    "security": checks.security_problems,
    "torchserve": checks.torchserve_problems,
    "auth-proxy": checks.auth_proxy_problems,
    "stream": checks.stream_problems,
    "mlflow-auth": checks.mlflow_auth_problems,
    "mlflow-clients": checks.mlflow_client_problems,
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_manifest_is_caught(rendered, case):
    kind, name, change, check, fragment = BROKEN[case]
    function = CHECK_FUNCTIONS[check]
    assert function(rendered["dev"]) == []  # the unbroken objects pass
    broken = checks.mutate(rendered["dev"], kind, name, change)
    problems = function(broken)
    assert any(fragment in problem for problem in problems), f"{case}: not caught by {check}: {problems}"


def test_torchserve_signing_in_to_mlflow_as_the_trainer_is_caught(rendered):
    [job] = checks.find(rendered["dev"], "Job", "arcscan-train")
    trainer = checks.secret_env(_container(job), "MLFLOW_TRACKING_PASSWORD")

    def sign_in_as_trainer(obj):
        for env in checks.pod_template(obj)["spec"]["initContainers"][0]["env"]:
            if env["name"] in checks.MLFLOW_CREDENTIALS:
                env["valueFrom"]["secretKeyRef"]["name"] = trainer

    broken = checks.mutate(rendered["dev"], "Deployment", "arcscan-torchserve", sign_in_as_trainer)
    assert any("the training user's Secret" in p for p in checks.mlflow_client_problems(broken))


def test_checkov_catches_broken_manifests(rendered, tmp_path):
    def break_it(obj):
        container = _container(obj)
        container.pop("livenessProbe")
        container.pop("readinessProbe")
        container["securityContext"]["allowPrivilegeEscalation"] = True
        container["image"] = container["image"].rsplit(":", 1)[0] + ":latest"
        del container["resources"]["limits"]

    broken = checks.mutate(rendered["dev"], "Deployment", "arcscan-mlflow", break_it)
    report = _need(checks.checkov_report, checks.write_objects(tmp_path / "broken", broken))
    failed = {check for check, _ in report["failed_checks"]}
    # liveness, readiness, latest tag, privilege escalation, CPU and memory limits
    assert {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_14", "CKV_K8S_20", "CKV_K8S_11", "CKV_K8S_13"} <= failed, failed
    assert checks.checkov_problems(report) != []


def test_checkov_skip_without_a_reason_is_caught():
    report = {"passed": 10, "failed": 0, "failed_checks": [],
              "skipped_checks": [("CKV_K8S_43", "Deployment.x", ""), ("CKV_K8S_35", "Deployment.y", "ok")]}
    assert len(checks.checkov_problems(report)) == 2


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("enable_model_api", "true", "enable_model_api"),
        ("management_address", "http://0.0.0.0:8081", "management_address"),
        ("inference_address", "http://0.0.0.0:8080", "inference_address"),
        ("disable_token_authorization", "true", "token authorization is off"),
        ("allowed_urls", ".*", "allowed_urls"),
        ("allowed_urls", "https://.*\\\\.mar", "allowed_urls"),
        ("metrics_mode", "log", "metrics_mode"),
    ],
)
def test_unsafe_config_properties_are_caught(key, value, fragment):
    text = (ROOT / "serving" / "config.properties").read_text()
    text = re.sub(rf"^{key}=.*$", f"{key}={value}", text, flags=re.M) if re.search(rf"^{key}=", text, re.M) else text + f"\n{key}={value}\n"
    assert any(fragment in p for p in checks.config_properties_problems(text))


def test_configmap_drifting_from_the_repository_config_is_caught(rendered):
    repo = (ROOT / "serving" / "config.properties").read_text()
    cluster = _configmap_properties(rendered["dev"])
    drifted = cluster.replace("job_queue_size=16", "job_queue_size=1000")
    assert any("job_queue_size" in p for p in checks.derived_config_problems(repo, drifted))
    public = cluster.replace("inference_address=http://127.0.0.1:8080", "inference_address=http://0.0.0.0:8080")
    assert any("inference_address" in p for p in checks.derived_config_problems(repo, public))
    assert any("inference_address" in p for p in checks.config_properties_problems(public))
    elsewhere = cluster.replace("metrics_address=http://0.0.0.0:8082", "metrics_address=http://10.0.0.5:8082")
    assert any("metrics_address" in p for p in checks.derived_config_problems(repo, elsewhere))


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda t: t.replace("ARG BASE=python:3.11.14-slim-bookworm", "ARG BASE=python:latest"), "not pinned"),
        (lambda t: t.replace("ARG BASE=python:3.11.14-slim-bookworm", "ARG BASE=python"), "not pinned"),
        (lambda t: t.replace("FROM arcscan-runtime AS training", "FROM python:slim AS training"), "not pinned"),
        (lambda t: t.replace("USER 10001:10001", "USER root"), "serving does not switch to a non-root USER"),
        (lambda t: t.replace("USER 10002:10002\n", ""), "mlflow does not switch to a non-root USER"),
        (lambda t: re.sub(r"HEALTHCHECK[^\n]*\\\n[^\n]*\n", "", t, count=1), "no HEALTHCHECK in target stage serving"),
        (lambda t: t.replace("ARG GIT_COMMIT=unknown", "ARG GIT_COMMIT=unknown\nENV MLFLOW_TRACKING_PASSWORD=hunter2"), "credential"),
        (lambda t: t.replace("COPY params.yaml ./", "COPY params.yml ./"), "does not exist"),
    ],
)
def test_broken_dockerfile_is_caught(tmp_path, edit, fragment):
    original = (ROOT / "containers" / "Dockerfile").read_text()
    edited = edit(original)
    assert edited != original
    path = tmp_path / "Dockerfile"
    path.write_text(edited)
    assert any(fragment in p for p in checks.dockerfile_problems(path)), checks.dockerfile_problems(path)


def test_dockerignore_without_the_venv_is_caught(tmp_path):
    path = tmp_path / ".dockerignore"
    path.write_text((ROOT / ".dockerignore").read_text().replace(".venv/\n", ""))
    assert checks.dockerignore_problems(path, DOCKERIGNORE_REQUIRED) == [f"{path}: does not exclude .venv"]


def test_prometheus_rule_drift_is_caught():
    [rule] = checks.load_objects((MONITORING / "prometheusrule.yaml").read_text())
    alerts = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    rule = copy.deepcopy(rule)
    rule["spec"]["groups"][0]["rules"][0]["for"] = "1h"
    assert checks.prometheus_rule_problems(rule, alerts) != []


def test_promtool_catches_a_broken_rule_and_a_wrong_threshold(tmp_path):
    for name in ("alerts.yml", "alerts_test.yml", "prometheus.yml"):
        shutil.copy(MONITORING / name, tmp_path / name)
    alerts = (MONITORING / "alerts.yml").read_text()
    (tmp_path / "alerts.yml").write_text(alerts.replace("> 0.05", "> 0.5", 1))  # error-rate alert no longer fires at 10 %
    result = _need(checks.promtool, "test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0 and "ArcscanStreamErrorRate" in result.stdout + result.stderr
    (tmp_path / "alerts.yml").write_text(alerts.replace("rate(arcscan_stream_frames_failed_total[10m])", "rate(arcscan_stream_frames_failed_total[10m]", 1))
    assert checks.promtool("check", "rules", str(tmp_path / "alerts.yml")).returncode != 0
    (tmp_path / "prometheus.yml").write_text((MONITORING / "prometheus.yml").read_text().replace("scrape_interval: 15s", "scrape_interval: 15parsecs"))
    result, _ = checks.promtool_check_config(tmp_path / "prometheus.yml")
    assert result.returncode != 0
