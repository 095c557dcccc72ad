"""The arc catalog: one row per arc per frame, the same from ``arcscan segment --catalog``,
the stream client and the archive.

Rows are built from a frame's answer record (:func:`arcscan.core.segment.frame_record`, the
JSON the endpoint returns and the stream client records), so a frame segmented locally and the
same frame segmented by the server give the same rows. :data:`SCHEMA` (pyarrow) is the one
description of the columns: their types, units and meaning (in each field's metadata); the
writers (Parquet, CSV) and :func:`read_catalog` follow it. A frame without arcs gives no row.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from arcscan.geo.arcs import ArcGeo


def _field(name: str, kind: pa.DataType, description: str) -> pa.Field:
    return pa.field(name, kind, metadata={"description": description})


_F, _S, _B, _I = pa.float64(), pa.string(), pa.bool_(), pa.int64()
SCHEMA = pa.schema(
    [
        _field("timestamp", pa.timestamp("ms", tz="UTC"), "exposure start of the frame, UTC"),
        _field("site", _S, "site code of the imager (e.g. gako)"),
        _field("imager", _S, "imager code (e.g. themis20); empty when the file has none"),
        _field("file", _S, "frame file name"),
        _field("frame", _I, "index of the frame within its file"),
        _field("model_version", _S, "model that segmented the frame (registry version or checkpoint name)"),
        _field("sky", _S, "where the frame's sky came from (imager profile, estimated, inscribed)"),
        _field("arc_fraction", _F, "share of the frame's sky covered by arcs"),
        _field("arcs_in_frame", _I, "number of arcs in the frame"),
        _field("arc", _I, "index of the arc within the frame (0 = first)"),
        _field("area_px", _I, "pixels of the arc"),
        _field("length_px", _F, "skeleton length, pixels"),
        _field("mean_width_px", _F, "area / length, pixels"),
        _field("orientation_px_deg", _F, "degrees counter-clockwise from the image x axis as displayed"),
        _field("centroid_x", _F, "centroid column, pixels"),
        _field("centroid_y", _F, "centroid row, pixels"),
        _field("mean_intensity", _F, "mean normalised intensity (0-1)"),
        _field("altitude_km", _F, "emission altitude the arc is mapped to, km"),
        _field("centroid_lat", _F, "area-weighted centroid, geographic latitude, degrees"),
        _field("centroid_lon", _F, "area-weighted centroid, geographic longitude, degrees east in [-180, 180)"),
        _field("centroid_mlat", _F, "centroid, AACGM-v2 magnetic latitude, degrees"),
        _field("centroid_mlon", _F, "centroid, AACGM-v2 magnetic longitude, degrees"),
        _field("centroid_mlt", _F, "centroid, magnetic local time, hours"),
        _field("poleward_lat", _F, "poleward boundary, geographic latitude (median over the arc's length), degrees"),
        _field("equatorward_lat", _F, "equatorward boundary, geographic latitude, degrees"),
        _field("poleward_mlat", _F, "poleward boundary, AACGM-v2 latitude at the centroid's longitude, degrees"),
        _field("equatorward_mlat", _F, "equatorward boundary, AACGM-v2 latitude, degrees"),
        _field("length_km", _F, "extent along the major axis at the emission altitude, km"),
        _field("mean_width_km", _F, "area / length at the emission altitude, km"),
        _field("area_km2", _F, "area on the emission shell, km²"),
        _field("orientation_geo_deg", _F, "major axis, degrees counter-clockwise from geographic east, (-90, 90]"),
        _field("orientation_mag_deg", _F, "major axis, degrees counter-clockwise from magnetic (AACGM) east-west, (-90, 90]"),
        _field("min_elevation", _F, "lowest elevation of the arc's pixels, degrees"),
        _field("max_elevation", _F, "highest elevation of the arc's pixels, degrees"),
        _field("near_horizon", _B, "the arc reaches below the near-horizon elevation: its figures are distorted"),
    ]
)
COLUMNS = tuple(SCHEMA.names)
_PIXEL_FIGURES = {  # catalog column: ArcObject field
    "area_px": "area",
    "length_px": "length",
    "mean_width_px": "mean_width",
    "orientation_px_deg": "orientation_deg",
    "centroid_x": "centroid_x",
    "centroid_y": "centroid_y",
    "mean_intensity": "mean_intensity",
}
_GEO_FIGURES = tuple(f.name for f in fields(ArcGeo))  # catalog column = ArcGeo field


def catalog_rows(record: dict, model_version: str, file: str | None = None) -> list[dict]:
    """One row per arc of a frame's answer ``record`` (``frame_record``'s keys; ``file`` and
    ``index`` as the stream client records them, else ``file``)."""
    objects = record.get("objects") or []
    frame = {
        "timestamp": _milliseconds(record.get("timestamp")),
        "site": record.get("site") or "",
        "imager": record.get("imager") or "",
        "file": record.get("file") or file or "",
        "frame": record.get("index"),
        "model_version": "" if model_version is None else str(model_version),
        "sky": record.get("sky") or "",
        "arc_fraction": record.get("arc_fraction"),
        "arcs_in_frame": len(objects),
    }
    rows = []
    for number, arc in enumerate(objects):
        geo = arc.get("geo") or {}
        row = frame | {"arc": number} | {column: arc.get(name) for column, name in _PIXEL_FIGURES.items()}
        rows.append(row | {name: geo.get(name) for name in _GEO_FIGURES})
    return rows


def _milliseconds(timestamp: str | None) -> str | None:
    """An ISO 8601 time at the catalog's precision (ms, UTC offset kept)."""
    return datetime.fromisoformat(timestamp).isoformat(timespec="milliseconds") if timestamp else None


def table(rows: Sequence[dict]) -> pa.Table:
    """The rows as a table of :data:`SCHEMA` (missing figures are nulls)."""
    columns = {name: [row.get(name) for row in rows] for name in COLUMNS}
    columns["timestamp"] = [datetime.fromisoformat(t) if isinstance(t, str) else t for t in columns["timestamp"]]
    arrays = [pa.array(columns[name], SCHEMA.field(name).type) for name in COLUMNS]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def write_parquet(rows: Sequence[dict], path: str | Path) -> Path:
    """The rows as a Parquet file (schema with its descriptions); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table(rows), path)
    return path


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    """The rows as CSV with a header of :data:`COLUMNS` (timestamps ISO 8601, UTC)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        handle.write(_csv_lines(rows, header=True))
    return path


def read_catalog(path: str | Path) -> pa.Table:
    """A catalog written by this module (Parquet or CSV), as a table of :data:`SCHEMA`."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pq.read_table(path, schema=SCHEMA)
    options = pa_csv.ConvertOptions(column_types=SCHEMA, strings_can_be_null=False)
    return pa_csv.read_csv(path, convert_options=options).select(COLUMNS).cast(SCHEMA)


class CsvAppender:
    """A catalog CSV open for appending (the stream client's): the header once, then each
    frame's rows flushed and fsynced."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._handle = self.path.open("a", newline="")
        if new:
            self._write(_csv_lines([], header=True))

    def append(self, rows: Iterable[dict]) -> None:
        self._write(_csv_lines(list(rows), header=False))

    def _write(self, text: str) -> None:
        if text:
            self._handle.write(text)
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def _csv_lines(rows: Sequence[dict], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows({name: "" if row.get(name) is None else row.get(name) for name in COLUMNS} for row in rows)
    return buffer.getvalue()
