"""The archive's catalog tables: the arc catalog of :mod:`arcscan.geo.catalog` (one row per arc
per frame) and, beside it, one row per frame (arc-free frames too, so every frame of a finished
file is accounted for).

Rows come from the same answer the TorchServe handler returns and the stream client records
(:func:`arcscan.core.segment.frame_record`) plus where the frame came from (file, frame index)
and which model version made it; arc rows are built by :func:`arcscan.geo.catalog.catalog_rows`,
the one row builder the stream client and ``arcscan segment --catalog`` use too. Tables are
partitioned by site and date (:func:`partition`).
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from arcscan.core.segment import Segmentation, frame_record
from arcscan.geo import catalog as arc_catalog
from arcscan.io.base import Frame

UNKNOWN = "unknown"  # the partition of frames without a site or a timestamp

FRAME_SCHEMA = pa.schema([
    pa.field("file", pa.string()),
    pa.field("frame", pa.int64()),
    pa.field("timestamp", pa.timestamp("ms", tz="UTC")),
    pa.field("site", pa.string()),
    pa.field("imager", pa.string()),
    pa.field("model_version", pa.string()),
    pa.field("arc_fraction", pa.float64()),
    pa.field("arcs", pa.int64()),
    pa.field("sky", pa.string()),
])
ARC_SCHEMA = arc_catalog.SCHEMA
ERROR_SCHEMA = pa.schema([pa.field("file", pa.string()), pa.field("model_version", pa.string()), pa.field("error", pa.string()), pa.field("time", pa.timestamp("ms", tz="UTC"))])


def catalog_rows(file: str, frame: Frame, result: Segmentation, model_version: str) -> tuple[dict, list[dict]]:
    """The frame's row and its arcs' rows."""
    record = frame_record(frame, result)
    frame_row = {"file": file, "frame": frame.index, "timestamp": frame.timestamp, "site": frame.site, "imager": frame.imager,
                 "model_version": model_version, "arc_fraction": record["arc_fraction"], "arcs": len(record["objects"]), "sky": record["sky"]}
    return frame_row, arc_catalog.catalog_rows(record, model_version, file)


def arc_table(rows: list[dict]) -> pa.Table:
    """Arc rows as a table of the arc catalog's schema."""
    return arc_catalog.table(rows)


def partition(row: dict) -> tuple[str, str]:
    """The (site, date) partition of a row: ``site=<site>/date=<YYYY-MM-DD>``."""
    site = row.get("site") or UNKNOWN
    moment = row.get("timestamp")
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return site.lower(), moment.date().isoformat() if moment else UNKNOWN
