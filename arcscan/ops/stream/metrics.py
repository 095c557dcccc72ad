"""The stream client's Prometheus metrics, on a registry of their own, and the HTTP server
that exposes them for scraping while a run lasts: the traffic (frames sent, acknowledged,
failed, retried; latency, lag) and, per imager, what the answers say (arc fraction, arcs per
frame, the arcs' boundary latitudes, drift against the training set)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from arcscan.ops.stream.drift import QUANTITIES, DriftMonitor, sky_brightness

from arcscan.errors import ArcscanError
from arcscan.io.frames import Frame

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """Frames sent, acknowledged and failed, retries, latency, frames in flight and lag; per
    imager the last answer's arc fraction, arcs and boundary latitudes, and the drift scores
    (with a ``drift`` monitor)."""

    def __init__(self, drift: DriftMonitor | None = None) -> None:
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
        self.arc_fraction = Gauge("arcscan_stream_arc_fraction", "Share of the sky called arc in the imager's last answered frame", ["imager"], registry=registry)
        self.arcs = Gauge("arcscan_stream_arcs_per_frame", "Arcs in the imager's last answered frame", ["imager"], registry=registry)
        self.boundary = Gauge(
            "arcscan_stream_boundary_latitude_degrees",
            "Geographic latitude of the most poleward poleward boundary / most equatorward equatorward boundary of the arcs away from the horizon in the imager's last answered frame (NaN: none)",
            ["imager", "boundary"],
            registry=registry,
        )
        self.drift = drift
        self.drift_score = Gauge(
            "arcscan_stream_drift_score",
            "Population stability index of the imager's recent frames against the training set (quantity: intensity, arc_fraction; above 0.25: drifted)",
            ["imager", "quantity"],
            registry=registry,
        )

    def acknowledged(self, frame: Frame) -> None:
        if frame.timestamp:
            moment = frame.timestamp.timestamp()
            self.newest_acknowledged = max(moment, self.newest_acknowledged or moment)

    def answered(self, frame: Frame, result: dict) -> None:
        """Count what the answer for ``frame`` says about its sky."""
        imager = frame.imager
        objects = result.get("objects") or []
        arc_fraction = float(result.get("arc_fraction") or 0.0)
        self.arc_fraction.labels(imager).set(arc_fraction)
        self.arcs.labels(imager).set(len(objects))
        measured = [o["geo"] for o in objects if o.get("geo") and not o["geo"].get("near_horizon")]
        self.boundary.labels(imager, "poleward").set(max((g["poleward_lat"] for g in measured), default=float("nan")))
        self.boundary.labels(imager, "equatorward").set(min((g["equatorward_lat"] for g in measured), default=float("nan")))
        if self.drift is not None:
            self.drift.add(imager, "intensity", sky_brightness(frame.image))
            self.drift.add(imager, "arc_fraction", arc_fraction)
            for quantity in QUANTITIES:
                self.drift_score.labels(imager, quantity).set(self.drift.score(imager, quantity))

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
