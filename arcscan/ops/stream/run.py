"""One stream run: its configuration, the producer loop (read the frames, skip those already
recorded, pace a replay, hand each frame to a worker) and the workers (post the frame, record
the outcome in the ledger, count it in the metrics), and a clean stop on a signal, a timer or
``max_frames``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import groupby
from pathlib import Path
from urllib.parse import urlsplit

from arcscan.errors import ArcscanError, InputError
from arcscan.io.frames import Frame, read_frames
from arcscan.geo.catalog import catalog_rows
from arcscan.ops.stream.client import Client
from arcscan.ops.stream.drift import DriftMonitor, load_reference
from arcscan.ops.stream.ledger import Ledger, now, recorded_frames
from arcscan.ops.stream.metrics import Metrics
from arcscan.ops.stream.sources import replay_files, time_key, watch_files

log = logging.getLogger(__name__)

_NO_TIME = datetime.min.replace(tzinfo=timezone.utc)


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
    drift_reference: Path | None = None  # training-set histograms (arcscan.ops.stream.drift): export drift scores


@dataclass
class StreamSummary:
    """What one run did, in frames (a file that could not be read counts as one failure)."""

    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped_already_done: int = 0
    abandoned: int = 0
    duration: float = 0.0


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


class _Run:
    """One run: the producer loop (read, skip, pace, submit) and the workers (post, record)."""

    def __init__(self, config: StreamConfig, speed: float | None, stop: threading.Event) -> None:
        self.config = config
        self.speed = speed
        self.stop = stop
        self.output = Path(config.output)
        self.metrics = Metrics(DriftMonitor(load_reference(config.drift_reference)) if config.drift_reference else None)
        self.client = Client(config, stop, on_retry=lambda frame: self.metrics.retries.labels(frame.imager).inc())
        self.summary = StreamSummary()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._anchor: tuple[datetime, float] | None = None  # (first paced timestamp, its monotonic release)

    def execute(self, batches: Iterable[list[Path]], stop_after: float | None) -> StreamSummary:
        started = time.monotonic()
        done = recorded_frames(self.output)
        with (
            Ledger(self.output) as ledger,  # closed last, once the workers are done
            self.metrics.served(self.config.metrics_host, self.config.metrics_port),
            _stop_timer(self.stop, stop_after),
            _stop_on_signals(self.stop),
            ThreadPoolExecutor(self.config.concurrency, "arcscan-stream") as pool,
        ):
            self._produce(batches, done, ledger, pool)
        self.summary.duration = time.monotonic() - started
        if self.error:
            raise self.error
        return self.summary

    def _produce(self, batches: Iterable[list[Path]], done: set, ledger: Ledger, pool: ThreadPoolExecutor) -> None:
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

    def _frames(self, batches: Iterable[list[Path]], ledger: Ledger) -> Iterator[Frame]:
        """The frames of each batch, minute by minute, in timestamp order across files (so a
        replay of several imagers interleaves them as they were taken)."""
        for batch in batches:
            for _, minute in groupby(batch, key=lambda path: time_key(path)[0]):
                frames = []
                for path in minute:
                    try:
                        frames += read_frames(path)  # a malformed timestamp makes the file unreadable
                    except (InputError, OSError, ValueError) as err:
                        log.warning("%s: not read: %s", path, err)
                        ledger.failed({"file": path.name, "index": None, "reason": "unreadable", "status": None, "message": str(err), "at": now()})
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

    def _send(self, frame: Frame, ledger: Ledger, released: float) -> None:
        with self.metrics.in_flight.track_inprogress():
            outcome = self.client.post(frame)
        local = {  # the client's own account of the frame, over the server's
            "file": frame.source,
            "index": frame.index,
            "timestamp": frame.timestamp.isoformat() if frame.timestamp else None,
            "site": frame.site,
            "imager": frame.imager,
        }
        if outcome.kind == "abandoned":
            self._count("abandoned")
        elif outcome.kind == "ok":
            mask = ledger.write_mask(frame, outcome.mask_png)
            latency = time.monotonic() - released
            entry = (
                outcome.result  # the server's answer for the frame, as received (without the mask PNG)
                | local
                | {
                    "model": outcome.model.get("name"),
                    "model_version": outcome.model.get("version"),
                    "latency_ms": round(latency * 1000, 1),
                    "attempts": outcome.attempts,
                    "status": outcome.status,
                    "mask": mask,
                    "at": now(),
                }
            )
            ledger.succeeded(entry, catalog_rows(entry, entry["model_version"]))
            self.metrics.answered(frame, outcome.result)
            self._count("succeeded")
            self.metrics.latency.observe(latency)
            self.metrics.acknowledged(frame)
            self.metrics.succeeded.labels(frame.imager).inc()
        else:
            log.warning("%s frame %d: %s (%s)", frame.source, frame.index, outcome.kind, outcome.message)
            ledger.failed(
                local
                | {"reason": outcome.kind, "status": outcome.status, "message": outcome.message, "attempts": outcome.attempts, "at": now()}
            )
            self._count("failed")
            self.metrics.failed.labels(frame.imager, outcome.kind).inc()

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
