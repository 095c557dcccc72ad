"""The stream client's ledger: append-only JSON-lines files in the output folder, each line
flushed and fsynced, and the masks beside them (see :mod:`arcscan.ops.stream`).

``results.jsonl`` (:data:`RESULTS`) holds the acknowledged frames, ``failed.jsonl``
(:data:`FAILED`) the failed ones, ``masks/<site>/<file stem>_<index:02d>.png`` the mask of each
acknowledged frame, written whole before its results line, and ``catalog.csv``
(:data:`CATALOG`) the arc catalog, one row per arc per acknowledged frame
(:mod:`arcscan.geo.catalog`: the rows ``arcscan segment --catalog`` and the archive write),
appended just before the frame's results line: a crash between the two repeats the frame's
rows when it is sent again ((file, frame, arc) tells them apart).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from arcscan.io.frames import Frame

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
FAILED = "failed.jsonl"
CATALOG = "catalog.csv"


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


def recorded_frames(output: Path) -> set[tuple[str | None, int | None]]:
    """The (file name, frame index) of every frame in ``output``'s results: not to be sent again."""
    return {(entry.get("file"), entry.get("index")) for entry in read_ledger(output / RESULTS)}


class Ledger:
    """``results.jsonl`` and ``failed.jsonl`` of ``output`` opened for appending (one lock for
    both), and its masks; a context manager that closes them."""

    def __init__(self, output: Path) -> None:
        output.mkdir(parents=True, exist_ok=True)
        self.output = output
        self._lock = threading.Lock()
        self._results = _open_append(output / RESULTS)
        self._failed = _open_append(output / FAILED)
        from arcscan.geo.catalog import CsvAppender  # the geo extra

        self._catalog = CsvAppender(output / CATALOG)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_mask(self, frame: Frame, mask_png: bytes) -> str:
        """Write the mask of ``frame`` durably; its path relative to the output folder."""
        mask = Path("masks") / (frame.site or "unknown") / f"{frame.source.split('.')[0]}_{frame.index:02d}.png"
        _write_durably(self.output / mask, mask_png)
        return mask.as_posix()

    def succeeded(self, entry: dict, catalog_rows: list[dict]) -> None:
        """Record an acknowledged frame: its catalog rows, then its results line."""
        with self._lock:
            self._catalog.append(catalog_rows)
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
        self._catalog.close()


def now() -> str:
    """The time of a ledger entry (``at``): UTC, ISO 8601, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


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
