"""The container images, run for real with podman: what the manifests declare, done by podman.

* serving: TorchServe and the auth proxy in one pod (as in the cluster), published on a
  127.0.0.1 port, answer a real THEMIS file sent with the stream token; no token, no answer.
* training: the image's own command (``dvc repro --pull``, a short run from a smaller params
  file) against the MLflow image, registers a ``challenger``.
* ``podman kube play`` of the serving Deployment rendered from the dev overlay (adapted where
  podman's kube support differs: :func:`kube_play_manifest`) fetches the champion from the
  MLflow image in its init container and answers a frame.
* every container runs as the user and group the manifests declare, with a read-only root where
  they declare it, and each image's own USER is that user.

Every ``podman run`` takes its user, read-only root, capabilities, environment, mounts and
arguments from the rendered dev overlay; what differs is said where it is done. Run by
``make test-images``, which builds the images first (``make images``); skipped otherwise.
Start-up times go to reports/images_startup.json (never asserted).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

import k8s.checks as checks
from arcscan.io.frames import read_frames
from arcscan.mlops.server import write_auth_config
from servers import free_port
from test_handler import check_answer

ROOT = Path(__file__).resolve().parents[1]
TAG = "0.1.0"
IMAGES = {target: f"localhost/arcscan/{target}:{TAG}" for target in checks.dockerfile_targets(ROOT / "containers" / "Dockerfile")}
REAL_THEMIS = ROOT / "data" / "real" / "train" / "20140310_0600_gill_themis19_full.pgm.gz"
MODEL_NAME = "arcscan-arc"
CHECKPOINT_VERSION = "image-test-1"
PROBE = "import json, os; print(json.dumps([os.getuid(), os.getgid(), bool(os.statvfs('/').f_flag & os.ST_RDONLY)]))"
STARTUP: dict[str, float] = {}

pytestmark = [
    pytest.mark.images,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("ARCSCAN_TEST_IMAGES"), reason="container tests run from `make test-images` (builds the images with podman first)"),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (make podman)"),
]


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)[:300]} -> {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def pod_spec(objects: list[dict], kind: str, name: str) -> dict:
    [workload] = checks.find(objects, kind, name)
    return checks.pod_template(workload)["spec"]


def container(spec: dict, name: str) -> dict:
    [found] = [c for c in checks.containers(spec) if c["name"] == name]
    return found


def declared_user(spec: dict, declared: dict) -> tuple[int, int]:
    pod, own = spec.get("securityContext", {}), declared.get("securityContext", {})
    user = own.get("runAsUser", pod["runAsUser"])
    return user, own.get("runAsGroup", pod.get("runAsGroup", user))


def security_flags(spec: dict, declared: dict) -> list[str]:
    """The manifest's user and group, read-only root, dropped capabilities, no privilege escalation."""
    own = declared.get("securityContext", {})
    flags = ["--user", "%d:%d" % declared_user(spec, declared)]
    if own.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if "ALL" in own.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", "all"]
    if own.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    return flags


def referenced(objects: list[dict], kind: str, ref: dict) -> str:
    [source] = checks.find(objects, kind, ref["name"])
    value = source["data"][ref["key"]]
    return base64.b64decode(value).decode() if kind == "Secret" else value


def env_flags(objects: list[dict], declared: dict, overrides: dict[str, str] | None = None) -> list[str]:
    """The manifest's environment: literals, and values from the rendered ConfigMaps and Secrets
    (the dev overlay's placeholders); ``overrides`` for what the test must change."""
    overrides, flags = overrides or {}, []
    for item in declared.get("env", []):
        name, source = item["name"], item.get("valueFrom", {})
        if name in overrides:
            value = overrides[name]
        elif "configMapKeyRef" in source:
            value = referenced(objects, "ConfigMap", source["configMapKeyRef"])
        elif "secretKeyRef" in source:
            value = referenced(objects, "Secret", source["secretKeyRef"])
        else:
            assert "$(" not in item["value"], f"{declared['name']}: give {name} an override"
            value = item["value"]
        flags += ["--env", f"{name}={value}"]
    return flags


def mount_flags(declared: dict, sources: dict[str, str], read_only: frozenset[str] = frozenset()) -> list[str]:
    """The manifest's volumeMounts: ``sources`` maps each volume to a named volume or host path
    (read-only where the manifest or ``read_only`` says), or to "tmpfs" (an emptyDir used by one
    container: executable, like an emptyDir)."""
    flags = []
    for mount in declared.get("volumeMounts", []):
        source = sources[mount["name"]]
        if source == "tmpfs":
            flags += ["--tmpfs", f"{mount['mountPath']}:rw,exec,nosuid,nodev,mode=1777"]
        else:
            ro = mount.get("readOnly") or mount["name"] in read_only
            flags += ["--volume", f"{source}:{mount['mountPath']}" + (":ro" if ro else "")]
    return flags


def run_flags(objects: list[dict], spec: dict, declared: dict, sources: dict[str, str], overrides: dict[str, str] | None = None,
              read_only: frozenset[str] = frozenset()) -> list[str]:
    workdir = ["--workdir", declared["workingDir"]] if "workingDir" in declared else []
    # Kubernetes ignores an image's HEALTHCHECK (its probes are in the manifest); so does this.
    return ["--no-healthcheck", *security_flags(spec, declared), *env_flags(objects, declared, overrides),
            *mount_flags(declared, sources, read_only), *workdir]


def assert_runs_as_declared(name: str, spec: dict, declared: dict, image: str) -> None:
    """The running container's uid/gid are the manifest's (not root), its root is read-only as
    declared, and the image's own USER is the same user."""
    uid, gid, read_only_root = json.loads(podman("exec", name, "python", "-c", PROBE).stdout)
    assert (uid, gid) == declared_user(spec, declared) and uid != 0
    assert read_only_root == bool(declared.get("securityContext", {}).get("readOnlyRootFilesystem"))
    assert podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip() == f"{uid}:{gid}"


def post_frame(url: str, path: Path, token: str | None) -> requests.Response:
    headers = {"Content-Type": "application/octet-stream", "X-Filename": path.name}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(url, data=path.read_bytes(), headers=headers, timeout=300)


def logs(name: str) -> str:
    """The last lines a container wrote (stdout and stderr), or why there are none."""
    found = podman("logs", "--tail", "60", name, check=False)
    return (found.stdout + found.stderr)[-4000:]


def first_answer(url: str, token: str, containers: list[str], timeout_s: float = 420, init: tuple[str, ...] = ()) -> requests.Response:
    """POST the real THEMIS file until it is answered (TorchServe loads the model first); a
    container that stopped fails the test with its logs and those of the ``init`` containers."""
    deadline = time.monotonic() + timeout_s
    while True:
        for name in containers:
            state = podman("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
            before = "".join(f"\ninit container {i}:\n{logs(i)}" for i in init)
            assert state == "running", f"{name} is {state or 'missing'}:\n{logs(name)}{before}"
        try:
            answer = post_frame(url, REAL_THEMIS, token)
            if answer.status_code == 200:
                return answer
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"no answer from {url} after {timeout_s:.0f} s"
        time.sleep(2)


def wait_healthy(url: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(url, timeout=3).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{url} not healthy after {timeout_s:.0f} s"
        time.sleep(1)


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def startup_report():
    yield
    if STARTUP:  # merged into the last report: a run of some of the tests keeps the others' figures
        path = ROOT / "reports" / "images_startup.json"
        path.parent.mkdir(exist_ok=True)
        report = json.loads(path.read_text()) if path.is_file() else {}
        if not all(isinstance(report.get(key), dict) for key in ("seconds", "load_average_after")):
            report = {"seconds": {}, "load_average_after": {}}
        load = [round(x, 2) for x in os.getloadavg()]
        for name, seconds in STARTUP.items():
            report["seconds"][name], report["load_average_after"][name] = seconds, load
        path.write_text(json.dumps(report, indent=2) + "\n")


@pytest.fixture(scope="module")
def dev_objects() -> list[dict]:
    for target, image in IMAGES.items():
        assert podman("image", "exists", image, check=False).returncode == 0, f"{image} is not built: make images"
    try:
        return checks.render(ROOT / "k8s" / "overlays" / "dev")
    except checks.ToolMissing as missing:
        pytest.fail(f"{missing} (make tools)")


@dataclass
class Pod:
    name: str
    url: str
    containers: dict[str, str]  # manifest container name -> podman container name
    http: requests.Session | None = None


@pytest.fixture(scope="module")
def serving_pod(dev_objects, tmp_path_factory):
    """TorchServe and the auth proxy of the Deployment in one pod on 127.0.0.1:PORT -> 8443. The
    model store is filled by the init container's script, from the repository's checkpoint
    (models/model.pt) instead of the registry's champion (that path: the kube play test)."""
    spec = pod_spec(dev_objects, "Deployment", "arcscan-torchserve")
    folder = tmp_path_factory.mktemp("serving-pod")
    config = folder / "config"
    config.mkdir()
    [volume] = [v for v in spec["volumes"] if v["name"] == "config"]
    for key, text in referenced_configmap(dev_objects, volume["configMap"]["name"]).items():
        (config / key).write_text(text)
    (folder / "stream-token").mkdir()
    (folder / "stream-token" / "tokens").write_text(stream_token(dev_objects) + "\n")
    name = f"arcscan-test-serving-{os.getpid()}"
    volumes = {v: f"{name}-{v}" for v in ("model-store", "run", "logs")}
    sources = {**volumes, "tmp": "tmpfs", "config": str(config), "stream-token": str(folder / "stream-token")}
    port = free_port()
    try:
        for volume in volumes.values():
            podman("volume", "create", volume)
        init = container(spec, "fetch-champion")
        # the repository's checkpoint with the image's params.yaml and the imager calibrations it names
        podman("run", "--rm", *run_flags(dev_objects, spec, init, sources), "--volume", f"{ROOT / 'models'}:/src/models:ro",
               IMAGES["serving"], "python", "serving/build_mar.py", "--checkpoint", "/src/models/model.pt",
               "--params", "params.yaml", "--version", CHECKPOINT_VERSION, "--output", "/home/model-server/model-store")
        podman("pod", "create", "--name", name, "--publish", f"127.0.0.1:{port}:8443")
        start = time.monotonic()
        names = {}
        for declared in checks.containers(spec, init=False):
            names[declared["name"]] = f"{name}-{declared['name']}"
            podman("run", "--detach", "--pod", name, "--name", names[declared["name"]],
                   *run_flags(dev_objects, spec, declared, sources), IMAGES["serving"], *declared["args"])
        url = f"http://127.0.0.1:{port}/predictions/arcscan"
        first_answer(url, stream_token(dev_objects), list(names.values()))
        STARTUP["serving pod: torchserve + auth proxy started -> first real frame answered"] = round(time.monotonic() - start, 1)
        yield Pod(name, url, names)
    finally:
        podman("pod", "rm", "--force", "--time", "20", name, check=False)
        for volume in volumes.values():
            podman("volume", "rm", "--force", volume, check=False)


def referenced_configmap(objects: list[dict], name: str) -> dict[str, str]:
    [found] = checks.find(objects, "ConfigMap", name)
    return found["data"]


def stream_token(objects: list[dict]) -> str:
    [secret] = checks.find(objects, "Secret", "arcscan-stream-token")
    return base64.b64decode(secret["data"]["tokens"]).decode().splitlines()[0]


def secret_data(objects: list[dict], name: str) -> dict[str, str]:
    [secret] = checks.find(objects, "Secret", name)
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


@pytest.fixture(scope="module")
def registry(dev_objects, tmp_path_factory):
    """The MLflow image as the Deployment declares it, in a pod that also resolves
    arcscan-mlflow to itself (the Service name in MLFLOW_TRACKING_URI); published on 127.0.0.1.
    Adapted: SQLite on the container's /tmp instead of PostgreSQL (no postgres image can be
    pulled here), the auth ini written by arcscan.mlops.write_auth_config (what the init
    container writes, with that URI). The admin then creates the trainer and the reader and
    grants the trainer EDIT, as in the README."""
    spec = pod_spec(dev_objects, "Deployment", "arcscan-mlflow")
    server = container(spec, "mlflow")
    folder = tmp_path_factory.mktemp("mlflow-pod")
    write_auth_config(folder / "auth" / "basic_auth.ini", "sqlite:////tmp/basic_auth.db")
    name = f"arcscan-test-mlflow-{os.getpid()}"
    port = free_port()
    sources = {"artifacts": f"{name}-artifacts", "tmp": "tmpfs", "auth-config": str(folder / "auth")}
    try:
        podman("volume", "create", sources["artifacts"])
        podman("pod", "create", "--name", name, "--publish", f"127.0.0.1:{port}:5000", "--add-host", "arcscan-mlflow:127.0.0.1")
        start = time.monotonic()
        podman("run", "--detach", "--pod", name, "--name", f"{name}-mlflow",
               *run_flags(dev_objects, spec, server, sources, {"MLFLOW_BACKEND_STORE_URI": "sqlite:////tmp/mlflow.db"}),
               IMAGES["mlflow"], *server["args"])
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/health")
        STARTUP["mlflow: container started -> /health answers"] = round(time.monotonic() - start, 1)
        # MLflow refuses Host headers it does not know (403): send the Service's, as clients in the cluster do
        http = requests.Session()
        http.headers["Host"] = "arcscan-mlflow:5000"
        admin = ("admin", secret_data(dev_objects, "arcscan-mlflow-auth")["MLFLOW_AUTH_ADMIN_PASSWORD"])
        for client in ("arcscan-mlflow-trainer", "arcscan-mlflow-reader"):
            user = secret_data(dev_objects, client)
            answer = http.post(f"{url}/api/2.0/mlflow/users/create", auth=admin, timeout=30,
                                   json={"username": user["MLFLOW_TRACKING_USERNAME"], "password": user["MLFLOW_TRACKING_PASSWORD"]})
            assert answer.status_code == 200, answer.text
        trainer = secret_data(dev_objects, "arcscan-mlflow-trainer")
        for resource in ("experiment", "registered_model"):
            answer = http.post(f"{url}/api/3.0/mlflow/users/permissions/grant", auth=admin, timeout=30, json={
                "username": trainer["MLFLOW_TRACKING_USERNAME"], "resource_type": resource, "resource_id": "*", "permission": "EDIT"})
            assert answer.status_code == 200, answer.text
        yield Pod(name, url, {"mlflow": f"{name}-mlflow"}, http)
    finally:
        podman("pod", "rm", "--force", "--time", "20", name, check=False)
        podman("volume", "rm", "--force", sources["artifacts"], check=False)


def short_params(path: Path) -> Path:
    """The training image's params.yaml with a short training (one epoch, fewer patches, one overlay)."""
    params = yaml.safe_load(podman("run", "--rm", IMAGES["training"], "cat", "/opt/arcscan/params.yaml").stdout)
    params["train"]["epochs"] = 1
    params["patches"].update(n_unlabeled=500, n_unlabeled_real=200)
    params["evaluate"]["overlays"] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def trained(dev_objects, registry, tmp_path_factory):
    """The training Job's container (the image's own command) in the MLflow pod, DVC remote =
    the repository's dvc-storage (read-only), a short params file via ARCSCAN_PARAMS_FILE."""
    spec = pod_spec(dev_objects, "Job", "arcscan-train")
    train = container(spec, "train")
    params = short_params(tmp_path_factory.mktemp("training") / "params" / "params.yaml")
    name = f"{registry.name}-train"
    sources = {"workspace": f"{name}-workspace", "dvc-storage": str(ROOT / "dvc-storage"), "tmp": "tmpfs", "var-tmp": "tmpfs"}
    try:
        podman("volume", "create", sources["workspace"])
        start = time.monotonic()
        result = podman("run", "--pod", registry.name, "--name", name,
                        *run_flags(dev_objects, spec, train, sources, read_only=frozenset({"dvc-storage"})),
                        "--volume", f"{params.parent}:/etc/arcscan/params:ro", "--env", "ARCSCAN_PARAMS_FILE=/etc/arcscan/params/params.yaml",
                        IMAGES["training"], timeout=3600, check=False)
        STARTUP["training: short dvc repro --pull (1 epoch) in the container"] = round(time.monotonic() - start, 1)
        assert result.returncode == 0, f"training exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        yield spec, train, result.stdout + result.stderr
    finally:
        podman("rm", "--force", name, check=False)
        podman("volume", "rm", "--force", sources["workspace"], check=False)


# ------------------------------------------------------------------------------------ serving


def test_serving_image_answers_a_real_themis_file_through_the_auth_proxy(dev_objects, serving_pod):
    answer = post_frame(serving_pod.url, REAL_THEMIS, stream_token(dev_objects))
    assert answer.status_code == 200, answer.text
    check_answer(answer.json(), REAL_THEMIS.name, read_frames(REAL_THEMIS), model={"name": MODEL_NAME, "version": CHECKPOINT_VERSION})


def test_serving_pod_refuses_frames_without_the_stream_token(serving_pod):
    assert post_frame(serving_pod.url, REAL_THEMIS, None).status_code == 401
    assert post_frame(serving_pod.url, REAL_THEMIS, "not-the-stream-token").status_code == 401


@pytest.mark.parametrize("name", ["torchserve", "auth-proxy"])
def test_serving_containers_run_as_declared(dev_objects, serving_pod, name):
    spec = pod_spec(dev_objects, "Deployment", "arcscan-torchserve")
    assert_runs_as_declared(serving_pod.containers[name], spec, container(spec, name), IMAGES["serving"])


# ----------------------------------------------------------------------------- training, MLflow


def test_mlflow_container_runs_as_declared(dev_objects, registry):
    spec = pod_spec(dev_objects, "Deployment", "arcscan-mlflow")
    assert_runs_as_declared(registry.containers["mlflow"], spec, container(spec, "mlflow"), IMAGES["mlflow"])


def test_training_image_runs_the_pipeline_and_registers_a_challenger(dev_objects, registry, trained):
    spec, train, log = trained
    for stage in ("patches", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in log, log[-3000:]
    trainer = secret_data(dev_objects, "arcscan-mlflow-trainer")
    auth = (trainer["MLFLOW_TRACKING_USERNAME"], trainer["MLFLOW_TRACKING_PASSWORD"])
    answer = registry.http.get(f"{registry.url}/api/2.0/mlflow/registered-models/alias", auth=auth, timeout=30,
                          params={"name": MODEL_NAME, "alias": "challenger"})
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["model_version"]["run_id"]
    run = registry.http.get(f"{registry.url}/api/2.0/mlflow/runs/get", auth=auth, params={"run_id": run_id}, timeout=30).json()["run"]
    assert "pixel_iou_crf" in {m["key"] for m in run["data"]["metrics"]}


def test_training_container_runs_as_declared(dev_objects, trained):
    spec, train, _ = trained
    sources = {"workspace": "tmpfs", "dvc-storage": "tmpfs", "tmp": "tmpfs", "var-tmp": "tmpfs"}
    name = f"arcscan-test-training-probe-{os.getpid()}"
    try:
        podman("run", "--detach", "--name", name, *run_flags(dev_objects, spec, train, sources), IMAGES["training"], "sleep", "120")
        assert_runs_as_declared(name, spec, train, IMAGES["training"])
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


# ---------------------------------------------------------------------------------- kube play


def kube_play_manifest(objects: list[dict], mlflow_ip: str, host_port: int) -> tuple[list[dict], dict[str, dict[str, str]]]:
    """The rendered dev Deployment arcscan-torchserve and its ConfigMaps, adapted to podman 4.3's
    kube support: images never pulled (imagePullPolicy Never), the auth proxy's port published
    as hostPort on 127.0.0.1, arcscan-mlflow resolved by a hostAlias to the MLflow pod (podman
    has no Services), secret volumes marked ``optional: false`` (podman 4.3 crashes without it).
    Secrets become podman secrets (returned: name -> data), as a flat JSON map of base64
    values for env references; for volumes podman 4.3 writes the values undecoded, so those
    secrets hold the decoded text."""
    [deployment] = checks.find(objects, "Deployment", "arcscan-torchserve")
    deployment = json.loads(json.dumps(deployment))
    spec = checks.pod_template(deployment)["spec"]
    assert deployment["spec"]["replicas"] == 1  # two replicas would collide on the hostPort
    spec["hostAliases"] = [{"ip": mlflow_ip, "hostnames": ["arcscan-mlflow"]}]
    for declared in checks.containers(spec):
        declared["imagePullPolicy"] = "Never"
        for port in declared.get("ports", []):
            if port["name"] == "inference":
                port.update(hostPort=host_port, hostIP="127.0.0.1")
    configmaps = {ref["configMap"]["name"] for ref in spec["volumes"] if "configMap" in ref}
    configmaps |= {e["valueFrom"]["configMapKeyRef"]["name"] for c in checks.containers(spec) for e in c.get("env", [])
                   if "configMapKeyRef" in e.get("valueFrom", {})}
    secrets: dict[str, dict[str, str]] = {}
    for volume in spec["volumes"]:
        if "secret" in volume:
            volume["secret"]["optional"] = False
            secrets[volume["secret"]["secretName"]] = secret_data(objects, volume["secret"]["secretName"])
    for declared in checks.containers(spec):
        for item in declared.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                [secret] = checks.find(objects, "Secret", ref["name"])
                secrets[ref["name"]] = dict(secret["data"])
    docs = [obj for obj in objects if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] in configmaps] + [deployment]
    return docs, secrets


@pytest.mark.xfail(reason="podman 4.3.1: after the init container (fetch-champion) built the champion's .mar and exited 0, "
                          "kube play fails removing it ('cannot remove container ... as it is running', podman issue 18477, "
                          "a race fixed in later podman); the pod annotation io.podman.annotations.init.container.type: always "
                          "did not avoid it", strict=False)
def test_kube_play_of_the_dev_deployment_serves_the_champion(dev_objects, registry, trained, tmp_path):
    """The champion (the trained challenger, promoted with `arcscan promote` from the training
    image) is fetched by the Deployment's own init container and answers a real frame."""
    trainer = secret_data(dev_objects, "arcscan-mlflow-trainer")
    promoted = podman("run", "--rm", "--pod", registry.name, "--env", "MLFLOW_TRACKING_URI=http://arcscan-mlflow:5000",
                      *[f"--env={k}={v}" for k, v in trainer.items()], "--env", "HOME=/tmp", "--read-only", "--no-healthcheck",
                      "--workdir", "/opt/arcscan", IMAGES["training"], "arcscan", "promote")
    auth = (trainer["MLFLOW_TRACKING_USERNAME"], trainer["MLFLOW_TRACKING_PASSWORD"])
    champion = registry.http.get(f"{registry.url}/api/2.0/mlflow/registered-models/alias", auth=auth, timeout=30,
                            params={"name": MODEL_NAME, "alias": "champion"})
    assert champion.status_code == 200, promoted.stdout + champion.text
    infra = podman("pod", "inspect", "--format", "{{.InfraContainerID}}", registry.name).stdout.strip()
    mlflow_ip = podman("inspect", "--format", "{{.NetworkSettings.IPAddress}}", infra).stdout.strip()
    port = free_port()
    docs, secrets = kube_play_manifest(dev_objects, mlflow_ip, port)
    manifest = tmp_path / "torchserve.yaml"
    manifest.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    try:
        for name, data in secrets.items():
            (tmp_path / f"{name}.json").write_text(json.dumps(data))
            podman("secret", "create", name, str(tmp_path / f"{name}.json"))
        start = time.monotonic()
        played = podman("kube", "play", str(manifest), timeout=900, check=False)
        pod = "arcscan-torchserve-pod-0"
        spec = checks.pod_template(docs[-1])["spec"]
        names = [f"{pod}-{c['name']}" for c in checks.containers(spec, init=False)]
        init = tuple(f"{pod}-{c['name']}" for c in spec.get("initContainers", []))
        assert played.returncode == 0, f"kube play -> {played.returncode}\n{played.stdout[-3000:]}\n{played.stderr[-3000:]}" + "".join(
            f"\ninit container {i}:\n{logs(i)}" for i in init)
        answer = first_answer(f"http://127.0.0.1:{port}/predictions/arcscan", stream_token(dev_objects), names, init=init)
        STARTUP["kube play: fetch champion (init container) + torchserve + auth proxy -> first frame answered"] = round(time.monotonic() - start, 1)
        check_answer(answer.json(), REAL_THEMIS.name, read_frames(REAL_THEMIS),
                     model={"name": MODEL_NAME, "version": champion.json()["model_version"]["version"]})
        for declared in checks.containers(spec, init=False):
            assert_runs_as_declared(f"{pod}-{declared['name']}", spec, declared, IMAGES["serving"])
    finally:
        podman("kube", "down", str(manifest), check=False)
        for doc in docs:  # kube down (podman 4.3) leaves the volumes kube play made of the ConfigMaps
            if doc["kind"] == "ConfigMap":
                podman("volume", "rm", "--force", doc["metadata"]["name"], check=False)
        for name in secrets:
            podman("secret", "rm", name, check=False)


# ------------------------------------------------------------------------------- archive (Ray)


def test_training_image_reprocesses_an_archive_on_embedded_ray_as_the_rayjob_declares(dev_objects, tmp_path):
    """The RayJob's entrypoint in the training image (the RayJob's image) with the head's user,
    read-only root, environment and mounts, on embedded Ray instead of the cluster (no
    RAY_ADDRESS) and with the repository's checkpoint instead of the champion: a real THEMIS
    file and a corrupt one -> every frame in the catalog once, the corrupt file in the errors
    table. The imager calibrations params.yaml names are the image's own."""
    [rayjob] = checks.find(dev_objects, "RayJob", "arcscan-reprocess")
    spec = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    head = container(spec, "ray-head")
    archive, catalog = tmp_path / "archive" / "2014" / "03" / "10" / "gill_themis19" / "ut06", tmp_path / "catalog"
    archive.mkdir(parents=True)
    shutil.copy(REAL_THEMIS, archive / REAL_THEMIS.name)
    (archive / "20140310_0601_gill_themis19_full.pgm.gz").write_bytes(b"\x1f\x8b not a gzip stream")
    catalog.mkdir()
    catalog.chmod(0o777)  # written by the RayJob's uid, not the test's
    entrypoint = rayjob["spec"]["entrypoint"].split()
    command = [*entrypoint[: entrypoint.index("--alias")], "--checkpoint", "/src/models/model.pt", *entrypoint[entrypoint.index("--alias") + 2 :]]
    sources = {"archive": str(tmp_path / "archive"), "catalog": str(catalog), "tmp": "tmpfs"}
    result = podman("run", "--rm", *run_flags(dev_objects, spec, head, sources), "--shm-size", "1g",
                    "--volume", f"{ROOT / 'models'}:/src/models:ro", IMAGES["training"], *command, timeout=1200, check=False)
    assert result.returncode == 0, f"reprocess exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    from arcscan.archive.manifest import Catalog

    frames = Catalog(catalog).table("frames").to_pylist()
    assert sorted(f["frame"] for f in frames) == list(range(len(read_frames(REAL_THEMIS))))
    errors = Catalog(catalog).table("errors").to_pylist()
    assert [Path(e["file"]).name for e in errors] == ["20140310_0601_gill_themis19_full.pgm.gz"], errors
