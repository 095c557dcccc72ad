"""The labels CSV the pipeline reads, kept safe while a person edits it from the page.

The file is ``file,frame,x,y,label,who,when`` (``arcscan patches`` and the pipeline read the
first five columns; :func:`arcscan.core.patches.label_row` checks every row). A label is
identified by its patch centre (file, frame, x, y): placing a label where one is already is
a change of that label, never a second row, so a retried or repeated request cannot
duplicate it.

Every change is read-modify-write of the whole file under a lock (a thread lock for the tabs
of one server, ``flock`` on the folder against a second server on the same file), written to
a temporary file beside it, flushed to disk and moved over it with :func:`os.replace`: a crash
leaves the old file or the new one, never half of either. The file is read again before every
change, so edits by another process are kept; a temporary file left by a writer killed
mid-write is removed at the next start. A file that is not a labels CSV (unknown
columns, unreadable rows, duplicate centres, not text) is refused with
:class:`LabelFileError` and never written.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from arcscan.core.patches import CSV_FIELDS, NEGATIVE, POSITIVE, label_row
from arcscan.errors import InputError

FIELDS = CSV_FIELDS + ("who", "when")
LABEL_NAMES = {POSITIVE: "arc", NEGATIVE: "other"}
MAX_FILE_BYTES = 16 * 2**20  # far more than any hand-made label set


class LabelFileError(InputError):
    """The labels file is not one this store may rewrite (corrupt, foreign, changed on disk
    into something unreadable); it is left as it is."""

    status = 409


@dataclass(frozen=True)
class Label:
    """One labelled patch centre in a frame's own pixels; ``label`` is 1 (arc) or 0 (other)."""

    file: str
    frame: int
    x: int
    y: int
    label: int
    who: str = ""
    when: str = ""

    @property
    def key(self) -> tuple[str, int, int, int]:
        return (self.file, self.frame, self.x, self.y)

    def record(self) -> dict:
        """JSON-ready, the label spelled as in the CSV."""
        return {"file": self.file, "frame": self.frame, "x": self.x, "y": self.y, "label": LABEL_NAMES[self.label], "who": self.who, "when": self.when}


def parse_labels(text: str, name: str) -> list[Label]:
    """The labels of a CSV's text; LabelFileError naming ``name`` and what is wrong."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or ()
        missing, foreign = set(CSV_FIELDS) - set(header), [c for c in header if c not in FIELDS]
        if missing or foreign or len(set(header)) != len(header):
            raise LabelFileError(
                f"{name}: columns {','.join(header)!r} are not a labels CSV (expected {','.join(CSV_FIELDS)} "
                f"and optionally who,when); refusing to rewrite it"
            )
        labels, seen = [], {}
        for line, row in enumerate(reader, start=2):
            where = f"{name} line {line}"
            if None in row:
                raise LabelFileError(f"{where}: more fields than columns")
            try:
                parsed = label_row(row, where)
            except InputError as err:
                raise LabelFileError(str(err)) from err
            label = Label(**parsed, who=row.get("who") or "", when=row.get("when") or "")
            if label.key in seen:
                raise LabelFileError(f"{where}: a second label at {label.file} frame {label.frame} ({label.x}, {label.y}) (first on line {seen[label.key]})")
            seen[label.key] = line
            labels.append(label)
    except csv.Error as err:
        raise LabelFileError(f"{name}: not a readable CSV ({err})") from err
    return labels


def format_labels(labels: list[Label]) -> str:
    """The CSV text of ``labels`` (the inverse of :func:`parse_labels`)."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for label in labels:
        writer.writerow(label.record())
    return out.getvalue()


def now() -> str:
    """The time of a change, UTC, to the second (ISO 8601)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class LabelStore:
    """The labels of one CSV file: read, put (add or relabel) and delete, each change saved at
    once and atomically (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()
        if self.path.is_dir():
            raise LabelFileError(f"{self.path}: is a folder, expected a labels CSV file")
        if not self.path.parent.is_dir():
            raise LabelFileError(f"{self.path.parent}: no such folder for the labels file")
        self._lock = threading.Lock()
        self._parsed: tuple[bytes, list[Label]] | None = None  # (file content, labels): an unchanged file is not parsed again
        with self._locked():
            self._read()  # refuse a corrupt or foreign file now, before anyone labels
            for stale in self.path.parent.glob(f"{self._temporary_prefix}*.tmp"):
                stale.unlink()  # left by a writer killed mid-write (writers hold the lock)

    def labels(self) -> list[Label]:
        """Every label, in the file's order, as it is on disk now."""
        return self._read()

    def put(self, file: str, frame: int, x: int, y: int, label: int, who: str = "") -> Label:
        """Label the patch centred on (x, y): a new row, or the one already there relabelled
        (kept in its place)."""
        new = Label(file, frame, x, y, label, who, now())
        with self._locked():
            labels = self._read()
            at = next((i for i, old in enumerate(labels) if old.key == new.key), None)
            if at is None:
                labels.append(new)
            elif labels[at].label != label:
                labels[at] = new
            else:
                return labels[at]  # nothing changes: the file is not rewritten
            self._write(labels)
        return new

    def delete(self, file: str, frame: int, x: int, y: int) -> bool:
        """Remove the label centred on (x, y); False if there is none (already deleted)."""
        key = (file, frame, x, y)
        with self._locked():
            labels = self._read()
            kept = [label for label in labels if label.key != key]
            if len(kept) == len(labels):
                return False
            self._write(kept)
        return True

    @property
    def _temporary_prefix(self) -> str:
        return f".{self.path.name}."

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This server's edits one at a time; ``flock`` on the folder serialises them with any
        other process using the same store (no lock file is left behind)."""
        with self._lock:
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                fcntl.flock(folder, fcntl.LOCK_EX)
                yield
            finally:
                os.close(folder)  # releases the flock

    def _read(self) -> list[Label]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size > MAX_FILE_BYTES:
            raise LabelFileError(f"{self.path.name}: {size} bytes, too large for a labels CSV (limit {MAX_FILE_BYTES}); refusing to rewrite it")
        data = self.path.read_bytes()
        if self._parsed is None or self._parsed[0] != data:
            self._parsed = (data, self._parse(data))
        return list(self._parsed[1])

    def _parse(self, data: bytes) -> list[Label]:
        if b"\0" in data:
            raise LabelFileError(f"{self.path.name}: holds NUL bytes, not a labels CSV; refusing to rewrite it")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise LabelFileError(f"{self.path.name}: not UTF-8 text ({err.reason} at byte {err.start}); refusing to rewrite it") from err
        return parse_labels(text, self.path.name) if text.strip() else []

    def _write(self, labels: list[Label]) -> None:
        """Atomic replace: temporary file in the same folder, fsync, rename, fsync the folder."""
        try:
            mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        data = format_labels(labels).encode("utf-8")
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self._temporary_prefix, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._parsed = (data, list(labels))
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
