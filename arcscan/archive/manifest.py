"""The catalog folder: per-file atomic commits, resume, redo on a new model version, errors table.

Layout of ``CATALOG_DIR``::

    frames/site=<site>/date=<YYYY-MM-DD>/<key>.parquet   one row per frame
    arcs/site=<site>/date=<YYYY-MM-DD>/<key>.parquet     one row per arc per frame
    masks/site=<site>/date=<YYYY-MM-DD>/<key>.npz        optional: bit-packed masks per frame
    errors/<key>.parquet                                 a file that could not be read or segmented
    manifest/<key>.json                                  the commit: file, size, mtime, model version, parts

``<key>`` names an archive file (a digest of its relative path), so a redone file's parts
replace its old ones. Every part is written to a hidden temporary file and renamed into place;
the manifest entry is renamed into place last and is the commit: a file is finished when its
entry exists, and only parts an entry lists belong to the catalog. A job killed at any point
leaves parts without an entry at worst; :meth:`Catalog.recover` removes them (and stray
temporary files) before the next run, which then redoes those files. Hence every frame of a
finished file is in the catalog exactly once, however often the job is killed and rerun.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from arcscan.archive.catalog import ARC_SCHEMA, ERROR_SCHEMA, FRAME_SCHEMA, arc_table, partition
from arcscan.archive.walk import ArchiveFile
from arcscan.errors import InputError

TABLES = {"frames": FRAME_SCHEMA, "arcs": ARC_SCHEMA, "errors": ERROR_SCHEMA}


def file_key(relative: str) -> str:
    """The catalog's name of an archive file: readable stem plus a digest of its path."""
    stem = relative.rsplit("/", 1)[-1].split(".")[0][:48]
    return f"{stem}-{hashlib.sha256(relative.encode()).hexdigest()[:16]}"


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file, flushed, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _parquet(name: str, rows: list[dict]) -> bytes:
    """Rows of table ``name`` as Parquet bytes (arcs: the arc catalog's own table builder)."""
    table = arc_table(rows) if name == "arcs" else pa.Table.from_pylist(rows, schema=TABLES[name])
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


@dataclass(frozen=True)
class FileResult:
    """What one archive file gave: frame rows, arc rows and masks (frame index -> mask), or
    the error that stopped it."""

    frames: list[dict]
    arcs: list[dict]
    masks: dict[int, np.ndarray]
    error: str | None = None


class Catalog:
    """A catalog folder (see module doc)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"catalog {self.root}: not a folder")

    def entry(self, key: str) -> dict | None:
        """The manifest entry of a file, or None while it is not committed."""
        path = self.root / "manifest" / f"{key}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def entries(self) -> list[dict]:
        """Every manifest entry."""
        folder = self.root / "manifest"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    def status(self, file: ArchiveFile, model_version: str) -> str:
        """``new`` (never committed, or the file changed since), ``done`` (committed by this
        model version) or ``stale`` (committed by another model version)."""
        entry = self.entry(file_key(file.relative))
        stat = file.path.stat()
        if entry is None or (entry["size"], entry["mtime_ns"]) != (stat.st_size, stat.st_mtime_ns):
            return "new"
        return "done" if entry["model_version"] == model_version else "stale"

    def recover(self) -> int:
        """Remove parts that no manifest entry lists and stray temporary files (what a killed
        job left); return how many files were removed."""
        listed = {self.root / part for entry in self.entries() for part in entry["parts"]}
        removed = 0
        for folder in ("frames", "arcs", "masks", "errors", "manifest"):
            for path in (self.root / folder).rglob("*") if (self.root / folder).is_dir() else ():
                stray = path.name.endswith(".tmp") or (folder != "manifest" and path.is_file() and path not in listed)
                if path.is_file() and stray:
                    path.unlink()
                    removed += 1
        return removed

    def commit(self, file: ArchiveFile, stat_size: int, stat_mtime_ns: int, model_version: str, result: FileResult) -> dict:
        """Write a file's parts, then its manifest entry (the commit); parts of an earlier
        commit of the same file that the new one does not list are removed after it."""
        key = file_key(file.relative)
        parts: list[str] = []
        if result.error is not None:
            row = {"file": file.relative, "model_version": model_version, "error": result.error, "time": datetime.now(timezone.utc)}
            parts.append(self._write(f"errors/{key}.parquet", _parquet("errors", [row])))
        for table, rows in (("frames", result.frames), ("arcs", result.arcs)):
            for (site, date), chunk in _by_partition(rows).items():
                parts.append(self._write(f"{table}/site={site}/date={date}/{key}.parquet", _parquet(table, chunk)))
        if result.masks:
            by_frame = {row["frame"]: partition(row) for row in result.frames}
            for (site, date), indices in _group(by_frame).items():
                buffer = io.BytesIO()
                np.savez_compressed(buffer, **{f"frame{i:04d}": _packed(result.masks[i]) for i in indices}, shape=np.array(result.masks[indices[0]].shape))
                parts.append(self._write(f"masks/site={site}/date={date}/{key}.npz", buffer.getvalue()))
        entry = {
            "file": file.relative, "key": key, "size": stat_size, "mtime_ns": stat_mtime_ns, "model_version": model_version,
            "status": "error" if result.error is not None else "done", "frames": len(result.frames), "arcs": len(result.arcs),
            "error": result.error, "parts": parts, "committed": datetime.now(timezone.utc).isoformat(),
        }
        previous = self.entry(key)
        write_atomically(self.root / "manifest" / f"{key}.json", (json.dumps(entry, indent=1) + "\n").encode())
        for old in set(previous["parts"] if previous else ()) - set(parts):
            (self.root / old).unlink(missing_ok=True)
        return entry

    def _write(self, relative: str, data: bytes) -> str:
        write_atomically(self.root / relative, data)
        return relative

    def table(self, name: str) -> pa.Table:
        """A whole table (``frames``, ``arcs`` or ``errors``) of the committed parts."""
        paths = sorted({str(self.root / part) for entry in self.entries() for part in entry["parts"] if part.startswith(f"{name}/")})
        if not paths:
            return TABLES[name].empty_table()
        return pa.concat_tables([pq.read_table(path, schema=TABLES[name]) for path in paths])

    def masks(self, key: str) -> dict[int, np.ndarray]:
        """The masks of a committed file (frame index -> boolean mask)."""
        entry = self.entry(key) or {"parts": []}
        masks = {}
        for part in (p for p in entry["parts"] if p.startswith("masks/")):
            with np.load(self.root / part) as stored:
                shape = tuple(stored["shape"])
                for name in (n for n in stored.files if n.startswith("frame")):
                    masks[int(name[5:])] = np.unpackbits(stored[name], count=shape[0] * shape[1]).reshape(shape).astype(bool)
        return masks


def _packed(mask: np.ndarray) -> np.ndarray:
    return np.packbits(mask.astype(bool).ravel())


def _by_partition(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault(partition(row), []).append(row)
    return groups


def _group(by_frame: dict[int, tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for index, place in sorted(by_frame.items()):
        groups.setdefault(place, []).append(index)
    return groups
