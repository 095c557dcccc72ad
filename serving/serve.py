"""Start and stop a local TorchServe for arcscan; also the helpers the end-to-end tests use.

    python serving/serve.py start [--model-store serving/model-store] [--config serving/config.properties]
    python serving/serve.py stop

``start`` runs ``torchserve --start --ncs`` in a run folder (default ``serving/run/``), waits
until every worker of the model is READY (asking the management API with the key from
``key_file.json``), then prints the inference URL and the key file. ``stop`` runs
``torchserve --stop`` and waits for the JVM and its workers to exit (SIGKILL after a timeout).

TorchServe keeps its pid file in the temp folder and writes ``key_file.json`` and ``logs/``
into its working directory, so each run folder gets its own ``TMPDIR``/``TEMP`` (``tmp/``,
also the JVM's ``java.io.tmpdir`` where archives are unpacked) and is the working directory:
several servers (``make serve`` and the tests) can run side by side. :func:`free_port_config`
writes a copy of a config with every port moved to a free one, for a server that must not
clash with another on the same machine (the speed benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psutil
from ts.model_server import load_properties

SERVING = Path(__file__).resolve().parent
DEFAULT_CONFIG = SERVING / "config.properties"
DEFAULT_STORE = SERVING / "model-store"
DEFAULT_RUN = SERVING / "run"
MODEL = "arcscan"
PID_FILE = ".model_server.pid"  # written by ``torchserve`` into its temp folder
JVM_CLASS = "org.pytorch.serve.ModelServer"
WORKER_MODULE = "model_service_worker"  # in the command line of every backend worker


@dataclass(frozen=True)
class Server:
    """A running TorchServe: where to reach it and where its keys and logs are."""

    run_dir: Path
    pid: int  # the JVM
    inference_url: str
    management_url: str
    metrics_url: str

    @property
    def key_file(self) -> Path:
        return self.run_dir / "key_file.json"

    def key(self, kind: str = "inference") -> str:
        """The current ``inference``, ``management`` or ``API`` key."""
        return json.loads(self.key_file.read_text())[kind]["key"]

    def auth(self, kind: str = "inference") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(kind)}"}

    def predictions_url(self, model: str = MODEL) -> str:
        return f"{self.inference_url}/predictions/{model}"

    def processes(self) -> list[psutil.Process]:
        """The JVM first, then all its descendants (the Python backend workers among them)."""
        jvm = psutil.Process(self.pid)
        return [jvm, *jvm.children(recursive=True)]

    def workers(self) -> list[psutil.Process]:
        """The backend worker processes serving the models."""
        return [p for p in self.processes()[1:] if WORKER_MODULE in " ".join(p.cmdline())]

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the JVM and its live descendants."""
        return sum(p.cpu_times().user + p.cpu_times().system for p in self.processes())


def _paths(run_dir: Path) -> tuple[Path, Path, Path]:
    return run_dir / "tmp", run_dir / "logs", run_dir / "torchserve.out"


def _env(run_dir: Path, workers: int) -> dict[str, str]:
    tmp, logs, _ = _paths(run_dir)
    env = {k: v for k, v in os.environ.items() if k != "TS_CONFIG_FILE"}  # it would override --ts-config
    env.update(TMPDIR=str(tmp), TEMP=str(tmp), LOG_LOCATION=str(logs), METRICS_LOCATION=str(logs))
    env.setdefault("ARCSCAN_TORCH_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, workers))))
    return env


def _torchserve() -> str:
    local = Path(sys.executable).parent / "torchserve"
    return str(local) if local.is_file() else (shutil.which("torchserve") or "torchserve")


def _jvm(run_dir: Path) -> psutil.Process | None:
    """The run folder's TorchServe JVM, if it is alive."""
    pid_file = _paths(run_dir)[0] / PID_FILE
    try:
        process = psutil.Process(int(pid_file.read_text().split()[0]))
        if process.status() != psutil.STATUS_ZOMBIE and JVM_CLASS in process.cmdline():
            return process
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    return None


def log_tail(run_dir: Path, lines: int = 30) -> str:
    _, logs, out = _paths(run_dir)
    parts = []
    for path in (out, logs / "ts_log.log", logs / "model_log.log"):
        if path.is_file():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path}\n" + "\n".join(text))
    return "\n".join(parts)


def _get(url: str, headers: dict[str, str], timeout: float = 5.0) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def wait_ready(server: Server, model: str = MODEL, timeout_s: float = 180.0) -> dict:
    """Wait until ``model`` has all its workers READY; return its management description."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if _jvm(server.run_dir) is None:
            raise RuntimeError(f"TorchServe exited while starting:\n{log_tail(server.run_dir)}")
        try:
            if server.key_file.is_file():
                status, body = _get(f"{server.management_url}/models/{model}", server.auth("management"))
                last = f"{status} {body[:300]}"
                if status == 200:
                    description = json.loads(body)[0]
                    workers = description.get("workers", [])
                    if workers and len(workers) >= description.get("minWorkers", 1) and all(
                        w.get("status") == "READY" for w in workers
                    ):
                        return description
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{model} not READY after {timeout_s:.0f} s (last answer: {last}):\n{log_tail(server.run_dir)}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_config(path: Path, source: Path = DEFAULT_CONFIG) -> Path:
    """Write ``source`` to ``path`` with each listening port (the ``*_port`` keys and the port
    of each ``*_address`` URL) replaced by a port free on 127.0.0.1 right now; every other
    line as it is. Returns ``path``."""
    lines = []
    for line in Path(source).read_text().splitlines():
        key, _, value = line.partition("=")
        url, _, port = value.rpartition(":")
        if not key.startswith("#") and key.endswith("_port"):
            line = f"{key}={free_port()}"
        elif not key.startswith("#") and key.endswith("_address") and "://" in url and port.isdigit():
            line = f"{key}={url}:{free_port()}"
        lines.append(line)
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def start(
    model_store: Path = DEFAULT_STORE,
    config: Path = DEFAULT_CONFIG,
    run_dir: Path = DEFAULT_RUN,
    models: tuple[str, ...] = (f"{MODEL}={MODEL}.mar",),
    timeout_s: float = 180.0,
) -> Server:
    """Start TorchServe in ``run_dir`` and wait until the first model is READY."""
    model_store, config, run_dir = (Path(p).resolve() for p in (model_store, config, run_dir))
    for model in models:
        archive = model_store / model.split("=", 1)[-1]
        if not archive.is_file():
            raise FileNotFoundError(f"{archive} not found: build it first (make mar)")
    if _jvm(run_dir) is not None:
        raise RuntimeError(f"TorchServe already runs in {run_dir}: stop it first (make stop)")
    tmp, logs, out = _paths(run_dir)
    for folder in (tmp, logs):
        folder.mkdir(parents=True, exist_ok=True)
    (run_dir / "key_file.json").unlink(missing_ok=True)  # never hand out a previous run's keys
    shutil.rmtree(tmp / "models", ignore_errors=True)  # archives unpacked by a previous run
    props = load_properties(str(config))
    command = [
        _torchserve(), "--start", "--ncs",
        "--model-store", str(model_store),
        "--models", *models,
        "--ts-config", str(config),
    ]
    with open(out, "wb") as output:
        launcher = subprocess.run(
            command, cwd=run_dir, env=_env(run_dir, int(props.get("default_workers_per_model", 1))),
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True, timeout=60,
        )
    jvm = _jvm(run_dir)
    if launcher.returncode != 0 or jvm is None:
        raise RuntimeError(f"torchserve --start failed ({launcher.returncode}):\n{log_tail(run_dir)}")
    server = Server(
        run_dir=run_dir,
        pid=jvm.pid,
        inference_url=props.get("inference_address", "http://127.0.0.1:8080"),
        management_url=props.get("management_address", "http://127.0.0.1:8081"),
        metrics_url=props.get("metrics_address", "http://127.0.0.1:8082"),
    )
    try:
        wait_ready(server, models[0].split("=", 1)[0], timeout_s)
    except BaseException:
        stop(run_dir)
        raise
    return server


def stop(run_dir: Path = DEFAULT_RUN, timeout_s: float = 30.0) -> bool:
    """Stop the run folder's TorchServe and wait for the JVM and its workers to exit; SIGKILL
    the process group after ``timeout_s``. False if nothing was running."""
    run_dir = Path(run_dir).resolve()
    jvm = _jvm(run_dir)
    if jvm is None:
        return False
    group = os.getpgid(jvm.pid)
    subprocess.run(
        [_torchserve(), "--stop"], cwd=run_dir, env=_env(run_dir, 1),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _group_alive(group):
        time.sleep(0.2)
    if _group_alive(group) and group != os.getpgrp():  # our own group is never ours to kill
        os.killpg(group, signal.SIGKILL)
        time.sleep(0.5)
    (run_dir / "key_file.json").unlink(missing_ok=True)
    return True


def _group_alive(group: int) -> bool:
    """Whether any live (non-zombie) process of the group is left."""
    for process in psutil.process_iter(["status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == group:
                return True
        except (OSError, psutil.Error):
            continue
    return False


@contextmanager
def running(
    model_store: Path,
    config: Path,
    run_dir: Path,
    timeout_s: float = 180.0,
    models: tuple[str, ...] = (f"{MODEL}={MODEL}.mar",),
) -> Iterator[Server]:
    """A TorchServe that is stopped on exit, also when the body fails."""
    try:
        yield start(model_store, config, run_dir, models, timeout_s)
    finally:
        stop(run_dir)


@contextmanager
def temporary(archive: Path, config: Path = DEFAULT_CONFIG, timeout_s: float = 180.0) -> Iterator[Server]:
    """TorchServe serving ``archive`` with ``config``'s settings but on free 127.0.0.1 ports,
    in a temporary run folder (benchmarks, load tests); stopped on exit."""
    archive = Path(archive).resolve()
    with tempfile.TemporaryDirectory(prefix="arcscan-serve-") as folder:
        ports = free_port_config(Path(folder) / "config.properties", config)
        with running(archive.parent, ports, Path(folder) / "run", timeout_s, (f"{MODEL}={archive.name}",)) as server:
            yield server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="start TorchServe and wait until the model is READY")
    start_cmd.add_argument("--model-store", type=Path, default=DEFAULT_STORE)
    start_cmd.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    start_cmd.add_argument("--run-dir", type=Path, default=DEFAULT_RUN)
    start_cmd.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for READY")
    stop_cmd = commands.add_parser("stop", help="stop TorchServe and wait for it to exit")
    stop_cmd.add_argument("--run-dir", type=Path, default=DEFAULT_RUN)
    args = parser.parse_args(argv)

    try:
        if args.command == "start":
            server = start(args.model_store, args.config, args.run_dir, timeout_s=args.timeout)
            print(f"TorchServe ready (pid {server.pid}, logs in {server.run_dir / 'logs'})")
            print(f"inference: {server.predictions_url()}")
            print(f"key file:  {server.key_file}  (Authorization: Bearer <inference.key>)")
            print(f"metrics:   {server.metrics_url}/metrics")
        else:
            print("TorchServe stopped" if stop(args.run_dir) else f"no TorchServe running in {args.run_dir}")
    except (FileNotFoundError, RuntimeError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
