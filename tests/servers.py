"""Real servers for integration tests: plain helpers and context managers, no pytest magic.

Every server binds 127.0.0.1 only, runs in its own process group and is always stopped on
exit (terminate, wait, kill the group on timeout), also when the test body fails.
"""

from __future__ import annotations

import http.client
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from serving.serve import free_port

HOST = "127.0.0.1"


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
    """Send ``sig`` to the process, wait, then SIGKILL its whole group (it leads one)."""
    if process.poll() is None:
        try:
            process.send_signal(sig)
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # leftovers: workers, orphaned children
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(timeout=timeout_s)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _as_postgres_user() -> dict:
    """``Popen`` arguments that run PostgreSQL as the ``postgres`` user when we are root
    (initdb and postgres refuse to run as root)."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def postgres_available() -> str | None:
    """None if a PostgreSQL server can be started here, else the reason why not."""
    for tool in ("initdb", "postgres"):
        if shutil.which(tool) is None:
            return f"PostgreSQL binary {tool!r} is not on PATH"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' OS user to run initdb as"
    return None


@contextmanager
def postgres_server(database: str = "mlflow", user: str = "arcscan", password: str = "arcscan-test") -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (free port, unix socket in the temp dir,
    password auth) with ``database`` created; yields its ``postgresql+psycopg2://`` URI."""
    import psycopg2

    folder = Path(tempfile.mkdtemp(prefix="arcscan-pg-"))  # under /tmp: reachable for postgres
    run_as = _as_postgres_user()
    if run_as:
        shutil.chown(folder, "postgres", "postgres")
    data, log = folder / "data", folder / "postgres.log"
    pwfile = folder / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as:
        shutil.chown(pwfile, "postgres", "postgres")
    process = None
    try:
        subprocess.run(
            ["initdb", "-D", str(data), "-U", user, f"--pwfile={pwfile}", "--auth=scram-sha-256",
             "-E", "UTF8", "--no-locale", "--no-sync"],
            cwd=folder, check=True, capture_output=True, timeout=120, **run_as,
        )
        port = free_port()
        with open(log, "wb") as out:
            process = subprocess.Popen(
                ["postgres", "-D", str(data), "-h", HOST, "-p", str(port), "-k", str(folder),
                 "-c", "fsync=off", "-c", "full_page_writes=off"],
                cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **run_as,
            )
        connect = dict(host=HOST, port=port, user=user, password=password, connect_timeout=2)
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"postgres exited ({process.returncode}):\n{_log_tail(log)}")
            try:
                connection = psycopg2.connect(dbname="postgres", **connect)
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres not ready after 30 s:\n{_log_tail(log)}")
                time.sleep(0.2)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{database}"')
        connection.close()
        yield f"postgresql+psycopg2://{user}:{password}@{HOST}:{port}/{database}"
    finally:
        if process is not None:
            _stop(process, signal.SIGINT)  # SIGINT: "fast" shutdown, does not wait for clients
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mlflow_server(
    backend_uri: str,
    artifacts_dir: Path,
    timeout_s: float = 90.0,
    port: int | None = None,
    auth_config: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """``mlflow server`` (``mlops.tracking_server_command``) on 127.0.0.1 (a free port
    unless ``port`` is given: a restart on the same address); with ``auth_config`` (an ini
    from ``mlops.write_auth_config``) the basic-auth app, the secrets in ``env``. Yields
    ``http://127.0.0.1:PORT`` once ``/health`` answers."""
    from arcscan.mlops import tracking_server_command, tracking_server_env

    port = port or free_port()
    artifacts_dir = Path(artifacts_dir)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    log = artifacts_dir.parent / f"mlflow-server-{port}.log"
    env = tracking_server_env({**os.environ, **(env or {})}, auth_config)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            tracking_server_command(backend_uri, artifacts_dir, HOST, port, auth=auth_config is not None),
            cwd=artifacts_dir.parent, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited ({process.returncode}):\n{_log_tail(log)}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not healthy after {timeout_s:.0f} s:\n{_log_tail(log)}")
            time.sleep(0.3)
        yield url
    finally:
        _stop(process)


class CrashProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` that SIGKILLs a client process at
    its ``at``-th request since :meth:`arm`: before forwarding it (the server never sees it) or,
    with ``after_answer``, once the server has answered (the server did it, the client never
    learns). Everything else is passed through unchanged."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.victim: int | None = None
        self.at = 0
        self.after_answer = False
        self.count = 0
        self.killed_at: str | None = None  # "METHOD path" of the request the client died at
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.count += 1
                    crash = proxy.victim is not None and proxy.count == proxy.at
                if crash and not proxy.after_answer:
                    proxy._kill(f"{self.command} {self.path}")
                    self.close_connection = True
                    return
                connection = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                connection.close()
                if crash:
                    proxy._kill(f"{self.command} {self.path} (answered {answer.status})")
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        self._server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def arm(self, victim: int, at: int, after_answer: bool = False) -> None:
        """Kill process ``victim`` at its ``at``-th request from now on."""
        with self._lock:
            self.victim, self.at, self.after_answer, self.count, self.killed_at = victim, at, after_answer, 0, None

    def _kill(self, request: str) -> None:
        self.killed_at = request
        os.kill(self.victim, signal.SIGKILL)

    def __enter__(self) -> "CrashProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def random_model_archive(folder: Path, version: str) -> Path:
    """A TorchServe archive of a randomly initialised (seed 0) arcscan model with the
    repository's params.yaml, built by ``serving/build_mar.py`` in ``folder``/model-store."""
    import torch

    from arcscan.core.model import ModelConfig, build_model, save_checkpoint

    root = Path(__file__).resolve().parents[1]
    torch.manual_seed(0)
    checkpoint = save_checkpoint(Path(folder) / "random.pt", build_model(ModelConfig()), ModelConfig())
    store = Path(folder) / "model-store"
    built = subprocess.run(
        [sys.executable, str(root / "serving" / "build_mar.py"), "--checkpoint", str(checkpoint),
         "--params", str(root / "params.yaml"), "--version", version, "--output", str(store)],
        capture_output=True, text=True, timeout=120,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return store / "arcscan.mar"


@contextmanager
def asgi_server(app) -> Iterator[str]:
    """An ASGI app (FastAPI, Starlette) served by a real uvicorn on 127.0.0.1 and a free port,
    in a thread of this process; yields ``http://127.0.0.1:PORT`` once it accepts requests and
    stops it on exit."""
    import socket

    import uvicorn

    sock = socket.create_server((HOST, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://{HOST}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
