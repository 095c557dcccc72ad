"""What every frame reader shares: the :class:`Frame`, the :class:`Limits` on one input, and
the checks and conversions that turn decoded pixels into 16-bit counts.

Every reader returns frames of ``uint16`` counts, 0..65535, whatever the source: 16-bit data
as stored, 8-bit data scaled by 257 (0 -> 0, 255 -> 65535), integer and float data checked to
lie in 0..65535 and rounded. Errors are :class:`~arcscan.errors.InputError` subclasses whose
message starts with the input's name.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from arcscan.errors import InputError, InputTooLarge

TIMESTAMP_KEY = "Image request start"
SITE_KEY = "Site unique ID"
IMAGER_KEY = "Imager unique ID"
BACKGROUND_KEY = "Ccd background"
_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
# Unicode categories dropped from client-given names: controls, format (bidi overrides), surrogates,
# private use, unassigned, line and paragraph separators.
_HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
EIGHT_BIT_SCALE = 257  # 8-bit samples to 16-bit counts: 255 * 257 == 65535


@dataclass(frozen=True)
class Limits:
    """Bounds on what one decoded input may hold (defaults fit one served request: a few
    minutes of one imager, e.g. a THEMIS level-1 CDF minute of 23 frames; :data:`FILE_LIMITS`
    fit the files a user reads locally).
    Every reader checks them before it allocates for what a header declares."""

    max_bytes: int = 16 * 2**20
    max_decompressed_bytes: int = 8 * 2**20  # gzip stream0, compressed CDF records
    max_frames: int = 60
    max_side: int = 1024
    max_metadata: int = 256  # distinct stream0 metadata keys, FITS header cards (a THEMIS header has about 30)


# A local file (CLI, pipeline, archive) may be a whole THEMIS level-1 hour: 1200 frames, ~160 MB.
FILE_LIMITS = Limits(max_bytes=256 * 2**20, max_decompressed_bytes=256 * 2**20, max_frames=1200)


@dataclass(frozen=True)
class Frame:
    """One all-sky image (raw 16-bit counts) with its metadata and provenance. The metadata
    values arcscan uses (site, imager, exposure start, CCD background) are parsed once, when
    the frame is made: unreadable ones raise :class:`~arcscan.errors.InputError` there."""

    image: np.ndarray
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""
    index: int = 0
    site: str = field(init=False)
    imager: str = field(init=False)
    timestamp: datetime | None = field(init=False)  # UTC start of the exposure (``Image request start``)
    ccd_background: float | None = field(init=False)

    def __post_init__(self) -> None:
        where = f"{self.source}: frame {self.index}"
        stamp, background = self.metadata.get(TIMESTAMP_KEY), self.metadata.get(BACKGROUND_KEY)
        try:
            moment = datetime.strptime(stamp.removesuffix("UTC").strip(), _TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc) if stamp else None
        except ValueError as err:
            raise InputError(f"{where}: unreadable timestamp {stamp[:40]!r}") from err
        try:
            level = float(background) if background else None
        except ValueError as err:
            raise InputError(f"{where}: unreadable CCD background {background[:40]!r}") from err
        for name, value in (("site", self.metadata.get(SITE_KEY, "")), ("imager", self.metadata.get(IMAGER_KEY, "")), ("timestamp", moment), ("ccd_background", level)):
            object.__setattr__(self, name, value)


def format_timestamp(moment: datetime) -> str:
    """The stream0 spelling of a UTC time, e.g. ``2014-03-10 06:00:00.063119 UTC``."""
    return moment.astimezone(timezone.utc).strftime(_TIMESTAMP_FORMAT) + " UTC"


def input_name(value: str, limit: int = 200) -> str:
    """A client-given file name made safe to show in messages: its last path component,
    without control, format or line-separator characters, at most ``limit`` characters;
    empty when nothing (or only ``.``/``..``) is left."""
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _HIDDEN_CATEGORIES)[:limit].strip()
    return "" if name in (".", "..") else name


def check_size(where: str, width: int, height: int, limits: Limits) -> None:
    """Refuse an image with no pixels (400) or a side over ``limits.max_side`` (413)."""
    if width <= 0 or height <= 0:
        raise InputError(f"{where}: {width}x{height} pixels, an image needs at least one pixel per side")
    if width > limits.max_side or height > limits.max_side:
        raise InputTooLarge(f"{where}: {width}x{height} pixels is over the limit of {limits.max_side} per side")


def check_count(name: str, count: int, limits: Limits) -> None:
    """Refuse an input declaring no frames (400) or more than ``limits.max_frames`` (413)."""
    if count > limits.max_frames:
        raise InputTooLarge(f"{name}: {count} frames, more than {limits.max_frames} (limit)")
    if count <= 0:
        raise InputError(f"{name}: no frames")


def counts(array: np.ndarray, where: str) -> np.ndarray:
    """Integer or float samples as ``uint16`` counts: finite, within 0..65535, rounded."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(f"{where}: array holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 65535:
        raise InputError(f"{where}: values outside 0..65535 (got {low:g}..{high:g})")
    return np.rint(array).astype(np.uint16) if array.dtype.kind == "f" else array.astype(np.uint16)


def eight_bit_counts(array: np.ndarray) -> np.ndarray:
    """8-bit samples (0..255) as 16-bit counts (x257), so 255 is full scale as in 16-bit data."""
    return array.astype(np.uint16) * np.uint16(EIGHT_BIT_SCALE)
