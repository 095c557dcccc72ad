"""The stream client's Prometheus metrics, on a registry of their own, and the HTTP server
that exposes them for scraping while a run lasts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from arcscan.errors import ArcscanError
from arcscan.io.frames import Frame

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """Frames sent, acknowledged and failed, retries, latency, frames in flight and lag."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
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

    @contextmanager
    def served(self, host: str, port: int | None) -> Iterator[None]:
        """Serve the metrics on ``host``:``port`` while the block runs (if a port is given)."""
        if port is None:
            yield
            return
        try:
            server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as err:
            raise ArcscanError(f"metrics port {port}: {err.strerror}") from err
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
