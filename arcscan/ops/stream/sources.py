"""Where the stream client's frames come from: frame files (THEMIS stream0 and level-1 CDF,
FITS, PNG, TIFF, JPEG, ``.npy``: what :func:`arcscan.io.frames.read_frames` reads) replayed
from files and archive folders, or watched for in a folder where new minutes arrive; in time
order, by the ``YYYYMMDD_HHMM`` minute a THEMIS file name starts with, then by name.

The file name is the ledger's key (with the frame index), so a file is handed out once per name.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from arcscan.errors import InputError

_FRAME_FILE = re.compile(r"^[^.].*\.(pgm|pgm\.gz|cdf|fits?|fts|png|tiff?|jpe?g|npy)$", re.IGNORECASE)
_MINUTE_PREFIX = re.compile(r"^\d{8}_\d{4}")  # 20140310_0600_gill_themis19_full.pgm.gz


def replay_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named in ``paths`` and the frame files under the folders among them
    (recursively), once per file name, in time order."""
    paths = [Path(p) for p in paths]
    files: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _is_frame_file(p))
        elif path.is_file():
            found = [path]
        else:
            raise InputError(f"{path}: no such file or folder")
        for file in found:
            files.setdefault(file.name, file)  # the name is the ledger key
    if not files:
        raise InputError(f"no frame files (.pgm, .pgm.gz, .cdf, .fits, .png, .tif, .jpg, .npy) in {', '.join(map(str, paths))}")
    return sorted(files.values(), key=time_key)


def watch_files(directory: Path, stop: threading.Event, poll: float = 1.0, settle: float = 2.0) -> Iterator[list[Path]]:
    """Batches of the frame files that appear in ``directory`` (not recursively), each file
    once, as soon as it is complete gzip or its size and mtime have not changed for ``settle``
    seconds; each batch in time order. Runs until ``stop`` is set."""
    pending: dict[str, tuple[tuple[int, int], float, bool]] = {}  # name -> (size, mtime), since, complete gzip
    handed: set[str] = set()
    while not stop.is_set():
        now = time.monotonic()
        present = [path for path in directory.iterdir() if _is_frame_file(path)]
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
            yield sorted(ready, key=time_key)
        stop.wait(poll)


def time_key(path: Path) -> tuple[str, str]:
    """Sort key: the ``YYYYMMDD_HHMM`` minute a THEMIS file name starts with (empty if none),
    then the name."""
    match = _MINUTE_PREFIX.match(path.name)
    return (match.group() if match else "", path.name)


def _is_frame_file(path: Path) -> bool:
    return bool(_FRAME_FILE.match(path.name)) and path.is_file()


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
