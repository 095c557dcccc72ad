"""The arc catalog: its schema (documented, the one source of the columns), the Parquet and CSV
writers, the rows of ``arcscan segment --catalog``, and the stream client's rows against the
archive's for the same frames (a real server segmenting with the real segmenter).

The model is a real ResNet18 whose last layer calls every patch an arc (weights zero, bias
+6), so that every frame has an arc whose figures can be compared.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from dataclasses import fields
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest

from arcscan.config import load_settings
from arcscan.core.model import load_checkpoint
from arcscan.core.segment import ArcObject, frame_record
from arcscan.core.synth import SYNTHETIC_SITE, write_minute
from arcscan.geo.arcs import ArcGeo
from arcscan.geo.catalog import COLUMNS, SCHEMA, CsvAppender, catalog_rows, read_catalog, table, write_csv, write_parquet
from arcscan.io.frames import decode_frames, read_frames
from arcscan.core.render import mask_png

from conftest import write_all_arc_workspace

ROOT = Path(__file__).resolve().parents[1]
GAKO_L1 = ROOT / "data" / "real" / "valid" / "thg_l1_asf_gako_2011010617_v01.cdf"
FRAMES = 2  # of the GAKO minute, for speed


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """params.yaml with absolute calibration paths and a coarse scan; the all-arc checkpoint."""
    if not GAKO_L1.is_file():
        pytest.skip(f"{GAKO_L1} not present (make data)")
    folder = tmp_path_factory.mktemp("catalog")
    write_all_arc_workspace(folder)
    return folder


@pytest.fixture(scope="module")
def segmenter(workspace):
    return load_settings(workspace / "params.yaml").segmenter(load_checkpoint(workspace / "all-arc.pt"))


def test_every_arc_figure_has_a_documented_column():
    pixel = {f.name for f in fields(ArcObject)} - {"geo"}
    assert {"area_px", "length_px", "mean_width_px", "orientation_px_deg", "centroid_x", "centroid_y", "mean_intensity"} <= set(COLUMNS)
    assert len(pixel) == 7
    assert {f.name for f in fields(ArcGeo)} <= set(COLUMNS)
    assert all(field.metadata and field.metadata[b"description"] for field in SCHEMA)
    assert SCHEMA.field("timestamp").type == pa.timestamp("ms", tz="UTC")


def test_parquet_and_csv_hold_the_same_catalog(tmp_path):
    record = {
        "index": 4, "timestamp": "2011-01-06T17:00:03.053312+00:00", "site": "gako", "imager": "", "arc_fraction": 0.25, "sky": "profile themis-gako",
        "objects": [
            {"area": 50, "length": 20.0, "mean_width": 2.5, "orientation_deg": 10.0, "centroid_x": 3.0, "centroid_y": 4.0, "mean_intensity": 0.4, "geo": None},
            {"area": 80, "length": 30.0, "mean_width": 2.7, "orientation_deg": -5.0, "centroid_x": 9.0, "centroid_y": 1.0, "mean_intensity": 0.6,
             "geo": {"centroid_lat": 63.1, "poleward_lat": 63.3, "near_horizon": False, "orientation_mag_deg": None}},
        ],
    }
    rows = catalog_rows(record, "7", file="thg.cdf")
    assert [row["arc"] for row in rows] == [0, 1] and rows[0]["file"] == "thg.cdf" and rows[1]["arcs_in_frame"] == 2
    parquet = read_catalog(write_parquet(rows, tmp_path / "c.parquet"))
    csv = read_catalog(write_csv(rows, tmp_path / "c.csv"))
    assert parquet.schema.equals(SCHEMA, check_metadata=True)
    assert parquet.to_pylist() == csv.to_pylist()
    first, second = parquet.to_pylist()
    assert first["centroid_lat"] is None and second["centroid_lat"] == 63.1 and second["near_horizon"] is False
    assert second["timestamp"].isoformat() == "2011-01-06T17:00:03.053000+00:00"
    assert catalog_rows({**record, "objects": []}, "7") == []  # a frame without arcs gives no row
    assert table([]).num_rows == 0


def test_segment_writes_the_catalog_with_physical_figures(workspace):
    """On a synthetic minute (the synthetic profile's fisheye geometry; the real GAKO skymap
    path is run by tests/test_geo_keogram.py)."""
    minute, _ = write_minute(workspace / "minute", 7, datetime(2026, 1, 1, 6, tzinfo=timezone.utc), n_frames=3)
    out = workspace / "segment-out"
    run = subprocess.run(
        [sys.executable, "-m", "arcscan", "--params", str(workspace / "params.yaml"), "segment", str(minute), "--checkpoint", str(workspace / "all-arc.pt"), "-o", str(out), "--catalog", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    catalog = read_catalog(out / "catalog.parquet").to_pylist()
    assert read_catalog(out / "catalog.csv").to_pylist() == catalog
    assert len(catalog) >= 3 and {row["frame"] for row in catalog} == {0, 1, 2}
    assert all(row["model_version"] == "all-arc.pt" and row["site"] == "synt" and row["file"] == minute.name for row in catalog)
    biggest = max(catalog, key=lambda row: row["area_px"])
    assert biggest["centroid_lat"] == pytest.approx(SYNTHETIC_SITE.latitude, abs=1.0) and biggest["near_horizon"]  # the whole sky, to 10 degrees
    assert biggest["centroid_mlat"] is not None and 0 <= biggest["centroid_mlt"] < 24


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def segmenting_server(segmenter) -> _Server:
    """``POST /predictions/arcscan``: the frame segmented by ``segmenter``, answered as the
    TorchServe handler answers (frame_record plus the mask PNG, the model's name and version)."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            (frame,) = decode_frames(body, self.headers.get("X-Filename", "upload"))
            with lock:
                result = segmenter(frame)
            answer = {"model": {"name": "arcscan", "version": "3"}, "frames": [{**frame_record(frame, result), "mask_png": base64.b64encode(mask_png(result.mask)).decode()}]}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return _Server(("127.0.0.1", 0), Handler)


def test_the_stream_client_appends_the_archives_rows(segmenter, tmp_path):
    from arcscan.ops.stream import StreamConfig, run_stream

    server = segmenting_server(segmenter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = StreamConfig(url=f"http://127.0.0.1:{server.server_address[1]}/predictions/arcscan", token="t", output=tmp_path / "stream", concurrency=1, max_frames=FRAMES)
        summary = run_stream(config, replay=[GAKO_L1], speed=None)
    finally:
        server.shutdown()
        server.server_close()
    assert summary.succeeded == FRAMES
    streamed = read_catalog(tmp_path / "stream" / "catalog.csv").to_pylist()
    archive = [row for frame in read_frames(GAKO_L1)[:FRAMES] for row in catalog_rows(frame_record(frame, segmenter(frame)), "3", file=frame.source)]
    assert len(archive) >= FRAMES
    assert streamed == table(archive).to_pylist()
    assert all(row["centroid_lat"] is not None for row in streamed)


def test_catalog_appends_survive_a_reopen(tmp_path):
    rows = catalog_rows({"index": 0, "timestamp": "2026-01-01T06:00:00+00:00", "site": "synt", "objects": [{"area": 1, "geo": {"centroid_lat": 56.0}}]}, "1", file="a")
    first = CsvAppender(tmp_path / "catalog.csv")
    first.append(rows)
    first.close()
    second = CsvAppender(tmp_path / "catalog.csv")  # no second header
    second.append(rows)
    second.close()
    assert [row["centroid_lat"] for row in read_catalog(tmp_path / "catalog.csv").to_pylist()] == [56.0, 56.0]
