"""The archive walk: every frame file under a folder, in the THEMIS layout or plain, with filters.

The THEMIS archive layout is ``YYYY/MM/DD/<site>_<imager>/ut<HH>/<files>``; plain folders
are walked too. A file's site, imager and start time come from the layout, else from its name
(stream0 ``20140310_0600_gill_themis19_full.pgm.gz``, level-1 CDF
``thg_l1_asf_gako_2011010617_v01.cdf``, DASC ``PKR_DASC_0558_20151007_082351.743.FITS``),
else stay unknown. Filters by site, imager and time range prune files whose path says they
are outside; frames are filtered again on their own metadata when read
(:meth:`Selection.keeps`), so files the walk cannot place are never wrongly dropped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from arcscan.errors import InputError
from arcscan.io.base import Frame

FRAME_SUFFIXES = (".pgm", ".pgm.gz", ".cdf", ".fits", ".fit", ".png", ".tif", ".tiff", ".jpg", ".jpeg", ".npy")
CALIBRATION = re.compile(r"_(Az|El)\.FITS?$|^themis_skymap_", re.IGNORECASE)  # imager calibrations, not frames

_LAYOUT = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/([A-Za-z0-9]+)_([A-Za-z0-9-]+)/ut(\d{2})/")
_STREAM0 = re.compile(r"^(\d{8})_(\d{4})_([a-z0-9]+)_([a-z0-9-]+?)_")
_CDF = re.compile(r"^thg_l1_asf_([a-z0-9]+)_(\d{10})_", re.IGNORECASE)
_DASC = re.compile(r"^([A-Z0-9]+)_([A-Z]+)_\d{4}_(\d{8})_(\d{6})", re.IGNORECASE)


@dataclass(frozen=True)
class ArchiveFile:
    """One frame file: its path, its path relative to the archive root (its identity in the
    catalog), and what its place says of it (``None`` where unknown; ``span`` is how long
    after ``start`` its frames may be)."""

    path: Path
    relative: str
    site: str | None = None
    imager: str | None = None
    start: datetime | None = None
    span: timedelta = timedelta(0)


@dataclass(frozen=True)
class Selection:
    """Which files and frames to process: sites and imagers (empty: all; case-insensitive)
    and a UTC time range ``[start, end)`` (``None``: open)."""

    sites: tuple[str, ...] = ()
    imagers: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if self.start and self.end and self.end <= self.start:
            raise InputError(f"time range: --end {self.end.isoformat()} is not after --start {self.start.isoformat()}")

    def admits(self, site: str | None, imager: str | None, start: datetime | None, span: timedelta = timedelta(0)) -> bool:
        """Whether something at this site, imager and time (unknown = admitted) may be selected."""
        if site and self.sites and site.lower() not in self.sites:
            return False
        if imager and self.imagers and imager.lower() not in self.imagers:
            return False
        if start is not None:
            if self.end is not None and start >= self.end:
                return False
            if self.start is not None and start + span < self.start:
                return False
        return True

    def keeps(self, frame: Frame) -> bool:
        """Whether a read frame is selected (on its own site, imager and timestamp)."""
        return self.admits(frame.site or None, frame.imager or None, frame.timestamp)


def parse_time(text: str) -> datetime:
    """A UTC time from ISO 8601 (``2014-03-10``, ``2014-03-10T06:00``); InputError otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise InputError(f"time {text!r} is not ISO 8601 (e.g. 2014-03-10T06:00)") from err
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def describe(relative: str) -> tuple[str | None, str | None, datetime | None, timedelta]:
    """Site, imager, start time and span that a file's place in the archive tells."""
    name = relative.rsplit("/", 1)[-1]
    utc = timezone.utc
    if match := _STREAM0.match(name):
        day, hhmm, site, imager = match.groups()
        return site, imager, datetime.strptime(day + hhmm, "%Y%m%d%H%M").replace(tzinfo=utc), timedelta(minutes=1)
    if match := _CDF.match(name):
        site, hour = match.groups()
        return site.lower(), "themis", datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=utc), timedelta(hours=1)
    if match := _DASC.match(name):
        site, imager, day, hms = match.groups()
        return site.lower(), imager.lower(), datetime.strptime(day + hms, "%Y%m%d%H%M%S").replace(tzinfo=utc), timedelta(seconds=1)
    if match := _LAYOUT.search(relative):
        year, month, day, site, imager, hour = match.groups()
        return site.lower(), imager.lower(), datetime(int(year), int(month), int(day), int(hour), tzinfo=utc), timedelta(hours=1)
    return None, None, None, timedelta(0)


def walk(root: str | Path, selection: Selection = Selection()) -> list[ArchiveFile]:
    """Every selected frame file under ``root`` (sorted by relative path; hidden files and
    folders and imager calibrations skipped); InputError when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"archive {root}: not a folder")
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in names:
            if name.startswith(".") or not name.lower().endswith(FRAME_SUFFIXES) or CALIBRATION.search(name):
                continue
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            site, imager, start, span = describe(relative)
            if selection.admits(site, imager, start, span):
                files.append(ArchiveFile(path, relative, site, imager, start, span))
    return sorted(files, key=lambda f: f.relative)
