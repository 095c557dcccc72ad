"""Stream client: send all-sky frames one by one to the arcscan inference endpoint.

Frames come from one of two sources: a folder where new stream0 minutes arrive (``watch``),
or files and archive folders replayed at the imagers' own pace (frame timestamps, optionally
sped up) or as fast as possible (``replay``). Each frame is posted as a one-frame stream0 body
to ``POST {url}`` with a bearer token (the auth proxy's shared token, or TorchServe's own
inference key when talking to TorchServe directly), ``concurrency`` frames at a time.
Connection errors, timeouts, 429 and 5xx answers are retried with exponential backoff and full
jitter; any other 4xx is final.

The output folder is the ledger, append-only, each line flushed and fsynced:

* ``results.jsonl``: one line per acknowledged frame, keyed by (file name, frame index). A run
  starts by reading it and never sends a recorded frame again, so a restart resumes where the
  last run stopped. A crash leaves at most a truncated last line; readers skip it.
* ``failed.jsonl``: one line per frame that failed (4xx answer, retries exhausted, malformed
  answer, unreadable file). Failed frames are not in ``results.jsonl``: the next run tries
  them again.
* ``masks/<site>/<file stem>_<index:02d>.png``: the mask of each acknowledged frame, written
  (and fsynced) before its results line.

A refused token (401/403, or TorchServe's 400 ``InvalidKeyException``) is first renewed:
with a ``token_file`` the token is read again (the server or an operator may have rotated
it), and with a ``renew_url`` (TorchServe's management address) an expired inference key is
renewed through TorchServe's token API with the file's API key (TorchServe keys expire after
``token_expiration_min``). If that gives no new key, the run stops with an error instead of
recording every frame as failed. SIGINT/SIGTERM stop it cleanly: no new frames are sent,
requests under way finish, frames waiting for a retry are abandoned (recorded nowhere, so the
next run sends them).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import random
import re
import signal
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import groupby
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from arcscan.errors import ArcscanError, InputError
from arcscan.io.frames import Frame, encode_stream0, read_frames
from arcscan.ops.tokens import client_token, key_file_entry

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
FAILED = "failed.jsonl"
_STREAM0_NAME = re.compile(r"^[^.].*\.pgm(\.gz)?$")
_MINUTE_PREFIX = re.compile(r"^\d{8}_\d{4}")  # 20140310_0600_gill_themis19_full.pgm.gz
_NO_TIME = datetime.min.replace(tzinfo=timezone.utc)
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True)
class StreamConfig:
    """Where frames go and how they are sent, recorded and watched for."""

    url: str
    token: str
    output: Path
    concurrency: int = 4
    retries: int = 5  # further attempts after the first, for retryable failures
    timeout: float = 30.0  # seconds per request
    backoff: float = 0.5  # retry n waits a random time up to min(max_backoff, backoff * 2**(n-1))
    max_backoff: float = 30.0
    metrics_port: int | None = None  # Prometheus metrics on <metrics_host>:<port>
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in a pod, so that Prometheus can scrape it
    token_file: Path | None = None  # key_file.json or shared token file the token came from: read again when refused
    renew_url: str | None = None  # TorchServe management URL: renew an expired key (POST /token?type=inference)
    max_frames: int | None = None  # stop after sending this many frames
    poll: float = 1.0  # watch: seconds between scans of the folder
    settle: float = 2.0  # watch: a file is ready once its size is unchanged this long (or it is complete gzip)


@dataclass
class StreamSummary:
    """What one run did, in frames (a file that could not be read counts as one failure)."""

    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped_already_done: int = 0
    abandoned: int = 0
    duration: float = 0.0


def load_token(token: str | None = None, token_file: str | Path | None = None) -> str:
    """The bearer token: ``token`` itself, or from ``token_file``: the inference key of a
    TorchServe ``key_file.json``, or the first token of a shared token file (the auth proxy's)."""
    if token and token_file:
        raise ArcscanError("give either a token or a token file, not both")
    if token_file:
        return client_token(Path(token_file))
    if not token:
        raise ArcscanError(
            "no inference token: pass --token (or set ARCSCAN_TOKEN) or --token-file "
            "(TorchServe's key_file.json or the auth proxy's token file)"
        )
    return token


def read_ledger(path: str | Path) -> list[dict]:
    """The entries of a JSON-lines ledger; lines that do not parse (a write cut short by a
    crash) are skipped with a warning. A missing file is an empty ledger."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                entries.append(entry)
            else:
                log.warning("%s line %d: not a JSON object (truncated write?), skipped", path, number)
    return entries


def replay_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named in ``paths`` and the stream0 files under the folders among them
    (recursively), once per file name, in time order."""
    paths = [Path(p) for p in paths]
    files: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _is_stream0(p))
        elif path.is_file():
            found = [path]
        else:
            raise InputError(f"{path}: no such file or folder")
        for file in found:
            files.setdefault(file.name, file)  # the name is the ledger key
    if not files:
        raise InputError(f"no stream0 files (.pgm, .pgm.gz) in {', '.join(map(str, paths))}")
    return sorted(files.values(), key=_time_key)


def watch_files(directory: Path, stop: threading.Event, poll: float = 1.0, settle: float = 2.0) -> Iterator[list[Path]]:
    """Batches of the stream0 files that appear in ``directory`` (not recursively), each file
    once, as soon as it is complete gzip or its size and mtime have not changed for ``settle``
    seconds; each batch in time order. Runs until ``stop`` is set."""
    pending: dict[str, tuple[tuple[int, int], float, bool]] = {}  # name -> (size, mtime), since, complete gzip
    handed: set[str] = set()
    while not stop.is_set():
        now = time.monotonic()
        present = [path for path in directory.iterdir() if _is_stream0(path)]
        names = {path.name for path in present}
        handed &= names  # forget files that were moved away
        for name in pending.keys() - names:
            del pending[name]
        ready = []
        for path in present:
            if path.name in handed:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # renamed or removed since the listing
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            if path.name not in pending or pending[path.name][0] != signature:
                pending[path.name] = (signature, now, _is_complete_gzip(path))
            _, since, complete = pending[path.name]
            if complete or (stat.st_size > 0 and now - since >= settle):
                ready.append(path)
        for path in ready:
            handed.add(path.name)
            del pending[path.name]
        if ready:
            yield sorted(ready, key=_time_key)
        stop.wait(poll)


def run_stream(
    config: StreamConfig,
    *,
    replay: Sequence[str | Path] = (),
    watch: str | Path | None = None,
    speed: float | None = None,
    stop: threading.Event | None = None,
    stop_after: float | None = None,
) -> StreamSummary:
    """Send the frames of ``replay`` (files / archive folders) or of the files arriving in
    ``watch`` to the endpoint and record the answers in ``config.output``.

    ``speed`` paces a replay by the frame timestamps (1.0 = real time, 10.0 = ten times
    faster); None sends as fast as ``concurrency`` allows, and is the only choice for watching. Watching runs until ``stop`` is set,
    ``stop_after`` seconds have passed, ``config.max_frames`` frames were sent or the process
    gets SIGINT/SIGTERM (handled when called from the main thread). Raises
    :class:`ArcscanError` for a bad configuration or a refused token.
    """
    if bool(replay) == (watch is not None):
        raise ArcscanError("give either files to replay or a folder to watch")
    url = urlsplit(config.url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ArcscanError(f"{config.url}: not an http(s) URL of the prediction endpoint")
    if not config.token:
        raise ArcscanError("no inference token")
    if config.concurrency < 1:
        raise ArcscanError(f"concurrency {config.concurrency}: must be at least 1")
    if config.retries < 0:
        raise ArcscanError(f"retries {config.retries}: must not be negative")
    if speed is not None and (watch is not None or speed <= 0):
        raise ArcscanError(f"speed {speed}: a replay's pace must be positive (watched files are sent as they come)")
    stop = stop or threading.Event()
    if watch is not None:
        directory = Path(watch)
        if not directory.is_dir():
            raise InputError(f"{directory}: no such folder to watch")
        batches: Iterable[list[Path]] = watch_files(directory, stop, config.poll, config.settle)
    else:
        batches = [replay_files(replay)]
    return _Run(config, speed, stop).execute(batches, stop_after)


class _Metrics:
    """The client's Prometheus metrics, on their own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter("arcscan_stream_frames_sent", "Frames sent to the endpoint (once per frame, retries not counted)", ["imager"], registry=registry)
        self.succeeded = Counter("arcscan_stream_frames_succeeded", "Frames acknowledged and recorded", ["imager"], registry=registry)
        self.failed = Counter("arcscan_stream_frames_failed", "Frames recorded as failed", ["imager", "reason"], registry=registry)
        self.retries = Counter("arcscan_stream_retries", "Requests repeated after a connection error, timeout, 429 or 5xx", ["imager"], registry=registry)
        self.latency = Histogram(
            "arcscan_stream_latency_seconds",
            "From a frame's release for sending to its acknowledgement (waits and retries included)",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge("arcscan_stream_in_flight", "Frames being sent or waiting for a retry", registry=registry)
        self.lag = Gauge("arcscan_stream_lag_seconds", "Now minus the timestamp of the newest acknowledged frame", registry=registry)
        self.newest_acknowledged: float | None = None  # POSIX time of the newest acknowledged frame
        self.lag.set_function(lambda: time.time() - self.newest_acknowledged if self.newest_acknowledged else float("nan"))

    def acknowledged(self, frame: Frame) -> None:
        if frame.timestamp:
            moment = frame.timestamp.timestamp()
            self.newest_acknowledged = max(moment, self.newest_acknowledged or moment)


class _Ledger:
    """``results.jsonl`` and ``failed.jsonl`` opened for appending; one lock for both."""

    def __init__(self, output: Path) -> None:
        output.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._results = _open_append(output / RESULTS)
        self._failed = _open_append(output / FAILED)

    def succeeded(self, entry: dict) -> None:
        self._append(self._results, entry)

    def failed(self, entry: dict) -> None:
        self._append(self._failed, entry)

    def _append(self, handle: BinaryIO, entry: dict) -> None:
        line = json.dumps(entry, separators=(",", ":")).encode() + b"\n"
        with self._lock:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        self._results.close()
        self._failed.close()


@dataclass
class _Outcome:
    """How sending one frame ended: ``ok`` (with the model, frame result and mask PNG),
    ``rejected``, ``unavailable``, ``bad-response`` or ``abandoned``."""

    kind: str
    attempts: int
    status: int | None = None
    message: str = ""
    model: dict | None = None
    result: dict | None = None
    mask_png: bytes = b""


class _Run:
    """One run: the producer loop (read, skip, pace, submit) and the workers (post, record)."""

    def __init__(self, config: StreamConfig, speed: float | None, stop: threading.Event) -> None:
        self.config = config
        self.speed = speed
        self.stop = stop
        self.output = Path(config.output)
        self.registry = CollectorRegistry()
        self.metrics = _Metrics(self.registry)
        self.summary = StreamSummary()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._sessions = threading.local()
        self.token = config.token
        self._token_lock = threading.Lock()
        self._anchor: tuple[datetime, float] | None = None  # (first paced timestamp, its monotonic release)

    def execute(self, batches: Iterable[list[Path]], stop_after: float | None) -> StreamSummary:
        started = time.monotonic()
        done = {(entry.get("file"), entry.get("index")) for entry in read_ledger(self.output / RESULTS)}
        ledger = _Ledger(self.output)
        try:
            with (
                self._metrics_server(),
                _stop_timer(self.stop, stop_after),
                _stop_on_signals(self.stop),
                ThreadPoolExecutor(self.config.concurrency, "arcscan-stream") as pool,
            ):
                self._produce(batches, done, ledger, pool)
        finally:
            ledger.close()
        self.summary.duration = time.monotonic() - started
        if self.error:
            raise self.error
        return self.summary

    @contextmanager
    def _metrics_server(self) -> Iterator[None]:
        """Serve the metrics on ``metrics_host``:``metrics_port`` while the block runs (if a port is set)."""
        port = self.config.metrics_port
        if port is None:
            yield
            return
        try:
            server, _ = start_http_server(port, addr=self.config.metrics_host, registry=self.registry)
        except OSError as err:
            raise ArcscanError(f"metrics port {port}: {err.strerror}") from err
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()

    def _produce(self, batches: Iterable[list[Path]], done: set, ledger: _Ledger, pool: ThreadPoolExecutor) -> None:
        slots = threading.BoundedSemaphore(self.config.concurrency)  # at most this many frames read ahead
        for frame in self._frames(batches, ledger):
            key = (frame.source, frame.index)
            if key in done:
                self.summary.skipped_already_done += 1
                continue
            self._pace(frame)
            while not self.stop.is_set() and not slots.acquire(timeout=0.2):
                pass
            if self.stop.is_set():
                return
            done.add(key)
            self.summary.sent += 1
            self.metrics.sent.labels(frame.imager).inc()
            future = pool.submit(self._send, frame, ledger, time.monotonic())
            future.add_done_callback(lambda f: self._finished(f, slots))
            if self.config.max_frames is not None and self.summary.sent >= self.config.max_frames:
                return

    def _frames(self, batches: Iterable[list[Path]], ledger: _Ledger) -> Iterator[Frame]:
        """The frames of each batch, minute by minute, in timestamp order across files (so a
        replay of several imagers interleaves them as they were taken)."""
        for batch in batches:
            for _, minute in groupby(batch, key=lambda path: _time_key(path)[0]):
                frames = []
                for path in minute:
                    try:
                        found = read_frames(path)
                        for frame in found:
                            frame.timestamp  # parsed here, so a malformed one makes the file unreadable
                        frames += found
                    except (InputError, OSError, ValueError) as err:
                        log.warning("%s: not read: %s", path, err)
                        ledger.failed({"file": path.name, "index": None, "reason": "unreadable", "status": None, "message": str(err), "at": _now()})
                        self._count("failed")
                        self.metrics.failed.labels("", "unreadable").inc()
                if self.stop.is_set():
                    return
                yield from sorted(frames, key=lambda f: (f.timestamp or _NO_TIME, f.source, f.index))

    def _pace(self, frame: Frame) -> None:
        """Wait until ``frame`` is due: its time since the first paced frame, divided by speed."""
        if self.speed is None or frame.timestamp is None:
            return
        if self._anchor is None:
            self._anchor = (frame.timestamp, time.monotonic())
            return
        first, released = self._anchor
        due = released + (frame.timestamp - first).total_seconds() / self.speed
        self.stop.wait(max(0.0, due - time.monotonic()))

    def _finished(self, future: Future, slots: threading.BoundedSemaphore) -> None:
        slots.release()
        error = future.exception()
        if error is not None:
            with self._lock:
                self.error = self.error or error
            self.stop.set()

    def _send(self, frame: Frame, ledger: _Ledger, released: float) -> None:
        with self.metrics.in_flight.track_inprogress():
            outcome = self._post(frame)
        base = {
            "file": frame.source,
            "index": frame.index,
            "timestamp": frame.timestamp.isoformat() if frame.timestamp else None,
            "site": frame.site,
            "imager": frame.imager,
        }
        if outcome.kind == "abandoned":
            self._count("abandoned")
        elif outcome.kind == "ok":
            model, result = outcome.model, outcome.result
            mask = Path("masks") / (frame.site or "unknown") / f"{frame.source.split('.')[0]}_{frame.index:02d}.png"
            _write_durably(self.output / mask, outcome.mask_png)
            latency = time.monotonic() - released
            ledger.succeeded(
                base
                | {
                    "model": model.get("name"),
                    "model_version": model.get("version"),
                    "arc_fraction": result.get("arc_fraction"),
                    "objects": result.get("objects", []),
                    "scan_ms": result.get("scan_ms"),
                    "crf_ms": result.get("crf_ms"),
                    "latency_ms": round(latency * 1000, 1),
                    "attempts": outcome.attempts,
                    "status": outcome.status,
                    "mask": mask.as_posix(),
                    "at": _now(),
                }
            )
            self._count("succeeded")
            self.metrics.latency.observe(latency)
            self.metrics.acknowledged(frame)
            self.metrics.succeeded.labels(frame.imager).inc()
        else:
            log.warning("%s frame %d: %s (%s)", frame.source, frame.index, outcome.kind, outcome.message)
            ledger.failed(
                base
                | {"reason": outcome.kind, "status": outcome.status, "message": outcome.message, "attempts": outcome.attempts, "at": _now()}
            )
            self._count("failed")
            self.metrics.failed.labels(frame.imager, outcome.kind).inc()

    def _post(self, frame: Frame) -> _Outcome:
        """Post one frame, retrying connection errors, timeouts, 429 and 5xx."""
        body = encode_stream0([frame])
        token = self.token
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/octet-stream",
            "X-Filename": frame.source,
        }
        session = self._session()
        status, message = None, ""
        for attempt in range(self.config.retries + 1):
            if attempt:
                self.metrics.retries.labels(frame.imager).inc()
                cap = min(self.config.max_backoff, self.config.backoff * 2 ** (attempt - 1))
                if self.stop.wait(random.uniform(0, cap)):
                    return _Outcome("abandoned", attempt, status, message)
            try:
                response = session.post(self.config.url, data=body, headers=headers, timeout=self.config.timeout)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
                status, message = None, f"{type(err).__name__}: {err}"
                continue
            status = response.status_code
            if status < 400:
                return _accepted(response, attempt + 1)
            message = _error_message(response)
            if status in (401, 403) or (status == 400 and "InvalidKeyException" in response.text):
                if not self._renewed(token):
                    raise ArcscanError(f"{self.config.url} refused the inference token ({status}: {message})")
                token = self.token
                headers["Authorization"] = f"Bearer {token}"
                continue
            if status == 429 or status >= 500:
                continue
            return _Outcome("rejected", attempt + 1, status, message)
        return _Outcome("unavailable", self.config.retries + 1, status, message)

    def _renewed(self, refused: str) -> bool:
        """After ``refused`` was refused: is there another key now (another thread renewed it,
        the key file changed, or TorchServe's token API renewed it)?"""
        with self._token_lock:
            if self.token != refused:
                return True
            if self.config.token_file is None:
                return False
            fresh = load_token(token_file=self.config.token_file)
            if fresh == refused and self.config.renew_url:
                api_key = key_file_entry(Path(self.config.token_file), "API")
                answer = requests.post(
                    f"{self.config.renew_url.rstrip('/')}/token",
                    params={"type": "inference"},
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=self.config.timeout,
                )
                if answer.status_code >= 400:
                    log.error("renewing the inference key at %s failed: %s", self.config.renew_url, _error_message(answer))
                fresh = load_token(token_file=self.config.token_file)
            if fresh == refused:
                return False
            log.info("inference key renewed from %s", self.config.token_file)
            self.token = fresh
            return True

    def _session(self) -> requests.Session:
        """One keep-alive session per worker thread (sessions are not thread-safe)."""
        if not hasattr(self._sessions, "session"):
            self._sessions.session = requests.Session()
        return self._sessions.session

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self.summary, field, getattr(self.summary, field) + 1)


@contextmanager
def _stop_timer(stop: threading.Event, seconds: float | None) -> Iterator[None]:
    """Set ``stop`` after ``seconds`` (if given) unless the block ends first."""
    if seconds is None:
        yield
        return
    timer = threading.Timer(seconds, stop.set)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into ``stop`` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        log.warning("%s: stopping; requests under way finish, pending retries are abandoned", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _open_append(path: Path) -> BinaryIO:
    """Open a ledger for appending; a last line cut short by a crash gets its newline first,
    so the next entry starts on a line of its own."""
    handle = path.open("a+b")
    if handle.tell() > 0:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) != b"\n":
            handle.write(b"\n")
            handle.flush()
    return handle


def _write_durably(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _accepted(response: requests.Response, attempts: int) -> _Outcome:
    """The outcome of a 2xx answer: ``ok`` if it holds a frame result with a mask, else ``bad-response``."""
    try:
        answer = response.json()
        result = dict(answer["frames"][0])
        mask_png = base64.b64decode(result["mask_png"], validate=True)
        model = dict(answer.get("model") or {})
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, binascii.Error) as err:
        return _Outcome("bad-response", attempts, response.status_code, f"answer without a frame result and mask ({err!r})")
    return _Outcome("ok", attempts, response.status_code, model=model, result=result, mask_png=mask_png)


def _error_message(response: requests.Response) -> str:
    """The message of an error answer: ``error`` (arcscan) or ``message`` (TorchServe), else the text."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(payload, dict):
        return str(payload.get("error") or payload.get("message") or payload)[:500]
    return str(payload)[:500]


def _is_stream0(path: Path) -> bool:
    return bool(_STREAM0_NAME.match(path.name)) and path.is_file()


def _is_complete_gzip(path: Path) -> bool:
    """Whether ``path`` is a gzip file whose (first) member ends, i.e. fully written."""
    if not path.name.endswith(".gz"):
        return False
    decompressor = zlib.decompressobj(wbits=31)
    try:
        with path.open("rb") as data:
            while not decompressor.eof and (chunk := data.read(1 << 16)):
                decompressor.decompress(chunk)
    except (OSError, zlib.error):
        return False
    return decompressor.eof


def _time_key(path: Path) -> tuple[str, str]:
    """Sort key: the ``YYYYMMDD_HHMM`` minute a THEMIS file name starts with, then the name."""
    match = _MINUTE_PREFIX.match(path.name)
    return (match.group() if match else "", path.name)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
