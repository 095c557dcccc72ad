"""All-sky imager frames in and out: THEMIS stream0 (``.pgm`` / ``.pgm.gz``), 16-bit PNG, ``.npy``.

A THEMIS stream0 file holds one minute (up to 20 frames at 3 s cadence). Each frame is a
binary PGM (``P5``) whose header carries metadata comment lines ``#"key" value``; the first
frame has the full set, later frames only what changed, so a frame's metadata is the running
union. Pixels are 16-bit big-endian (``maxval 65535``).

Everything that decodes untrusted bytes goes through :func:`decode_frames`, which enforces
:class:`Limits` *before* allocating (body size, decompressed size, dimensions, frame count)
and raises :class:`~arcscan.errors.InputError` subclasses naming the input and the problem.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import png

from arcscan.errors import InputError, InputTooLarge, UnsupportedFormat

TIMESTAMP_KEY = "Image request start"
_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_META_LINE = re.compile(rb'^#"([^"]*)"\s*(.*?)\s*$')
_WHITESPACE = b" \t\r\n"
_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


@dataclass(frozen=True)
class Limits:
    """Bounds on what one decoded input may hold (defaults fit a THEMIS minute with room)."""

    max_bytes: int = 16 * 2**20
    max_decompressed_bytes: int = 8 * 2**20
    max_frames: int = 20
    max_side: int = 1024


@dataclass(frozen=True)
class Frame:
    """One all-sky image (raw 16-bit counts) with its metadata and provenance."""

    image: np.ndarray
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""
    index: int = 0

    @property
    def site(self) -> str:
        return self.metadata.get("Site unique ID", "")

    @property
    def imager(self) -> str:
        return self.metadata.get("Imager unique ID", "")

    @property
    def timestamp(self) -> datetime | None:
        """UTC start of the exposure, from the ``Image request start`` metadata."""
        text = self.metadata.get(TIMESTAMP_KEY)
        if not text:
            return None
        try:
            moment = datetime.strptime(text.removesuffix("UTC").strip(), _TIMESTAMP_FORMAT)
        except ValueError as err:
            raise InputError(f"{self.source} frame {self.index}: unreadable timestamp {text[:40]!r}") from err
        return moment.replace(tzinfo=timezone.utc)

    @property
    def ccd_background(self) -> float | None:
        value = self.metadata.get("Ccd background")
        if not value:
            return None
        try:
            return float(value)
        except ValueError as err:
            raise InputError(f"{self.source} frame {self.index}: unreadable CCD background {value[:40]!r}") from err


def format_timestamp(moment: datetime) -> str:
    """The stream0 spelling of a UTC time, e.g. ``2014-03-10 06:00:00.063119 UTC``."""
    return moment.astimezone(timezone.utc).strftime(_TIMESTAMP_FORMAT) + " UTC"


# --------------------------------------------------------------------------------------------
# Decoding untrusted bytes


def decode_frames(data: bytes, name: str = "input", limits: Limits = Limits()) -> list[Frame]:
    """Decode a stream0 file (plain or gzip), a 16-bit PNG or a ``.npy`` array from bytes.

    The format is recognised from the leading bytes, not from ``name`` (used in messages).
    """
    if not data:
        raise InputError(f"{name}: empty input")
    if len(data) > limits.max_bytes:
        raise InputTooLarge(f"{name}: {len(data)} bytes exceeds the limit of {limits.max_bytes}")
    if data[:2] == b"\x1f\x8b":
        return _parse_pgm(_gunzip(data, name, limits), name, limits)
    if data[:2] == b"P5" or data[:1] == b"#":
        return _parse_pgm(data, name, limits)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return [_read_png(data, name, limits)]
    if data[:6] == b"\x93NUMPY":
        return _read_npy(data, name, limits)
    if data[:2] in (b"P2", b"P1", b"P3", b"P4", b"P6"):
        raise UnsupportedFormat(f"{name}: netpbm type {data[:2].decode()} is not supported, expected binary PGM (P5)")
    raise UnsupportedFormat(
        f"{name}: not a recognised frame format (expected THEMIS stream0 .pgm/.pgm.gz, 16-bit PNG or .npy)"
    )


def read_frames(path: str | Path, limits: Limits = Limits()) -> list[Frame]:
    """Read every frame of a file (any format :func:`decode_frames` accepts)."""
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise InputTooLarge(f"{path.name}: {size} bytes exceeds the limit of {limits.max_bytes}")
    return decode_frames(path.read_bytes(), path.name, limits)


def _gunzip(data: bytes, name: str, limits: Limits) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(limits.max_decompressed_bytes + 1)
    except EOFError as err:
        raise InputError(f"{name}: truncated gzip stream ({err})") from err
    except (OSError, zlib.error) as err:
        raise InputError(f"{name}: corrupt gzip data ({err})") from err
    if len(out) > limits.max_decompressed_bytes:
        raise InputTooLarge(
            f"{name}: decompresses to more than {limits.max_decompressed_bytes} bytes (limit)"
        )
    return out


def _skip_whitespace(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in _WHITESPACE:
        pos += 1
    return pos


def _parse_pgm(data: bytes, name: str, limits: Limits) -> list[Frame]:
    frames: list[Frame] = []
    metadata: dict[str, str] = {}
    pos = _skip_whitespace(data, 0)
    while pos < len(data):
        where = f"{name}: frame {len(frames)}"
        if len(frames) == limits.max_frames:
            raise InputTooLarge(f"{name}: more than {limits.max_frames} frames (limit)")
        if data[pos : pos + 2] != b"P5":
            raise InputError(f"{where}: expected PGM magic 'P5' at byte {pos}, got {data[pos:pos + 2]!r}")
        pos += 2
        numbers: list[int] = []
        while len(numbers) < 3:
            pos = _skip_whitespace(data, pos)
            if pos >= len(data):
                raise InputError(f"{where}: truncated header")
            if data[pos : pos + 1] == b"#":
                end = data.find(b"\n", pos)
                end = len(data) if end < 0 else end
                match = _META_LINE.match(data[pos:end])
                if match:
                    key, value = (part.decode("latin-1") for part in match.groups())
                    metadata[key] = value
                pos = end + 1
                continue
            end = pos
            while end < len(data) and data[end] not in _WHITESPACE and end - pos <= 10:
                end += 1
            token = data[pos:end]
            if not token.isdigit():
                raise InputError(f"{where}: bad header field {token[:20]!r}, expected a number")
            numbers.append(int(token))
            pos = end
        width, height, maxval = numbers
        if not (0 < width <= limits.max_side and 0 < height <= limits.max_side):
            raise InputTooLarge(
                f"{where}: {width}x{height} pixels is outside 1..{limits.max_side} per side"
            )
        if maxval < 256:
            raise UnsupportedFormat(f"{where}: 8-bit PGM (maxval {maxval}), expected 16-bit (maxval 65535)")
        if maxval > 65535:
            raise InputError(f"{where}: maxval {maxval} is over 65535")
        pos += 1  # the single whitespace byte that ends the header
        nbytes = width * height * 2
        if pos + nbytes > len(data):
            raise InputError(
                f"{where}: truncated pixel data ({len(data) - pos} of {nbytes} bytes)"
            )
        image = np.frombuffer(data, ">u2", count=width * height, offset=pos).reshape(height, width)
        frames.append(Frame(image.astype(np.uint16), dict(metadata), name, len(frames)))
        pos = _skip_whitespace(data, pos + nbytes)
    if not frames:
        raise InputError(f"{name}: no frames")
    return frames


def _read_png(data: bytes, name: str, limits: Limits) -> Frame:
    """A 16-bit PNG: greyscale, or colour with one non-zero or identical channels (OATH stores
    THEMIS frames in the green channel of an RGB PNG)."""
    try:
        reader = png.Reader(bytes=data)
        width, height, rows, info = reader.read()
        if not (0 < width <= limits.max_side and 0 < height <= limits.max_side):
            raise InputTooLarge(f"{name}: {width}x{height} pixels is outside 1..{limits.max_side} per side")
        if info["bitdepth"] != 16:
            raise UnsupportedFormat(f"{name}: {info['bitdepth']}-bit PNG, expected 16-bit")
        planes = info["planes"]
        pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except png.Error as err:
        raise InputError(f"{name}: corrupt PNG ({err})") from err
    colour = pixels.reshape(height, width, planes)[..., : planes - int(info["alpha"])]
    if colour.shape[-1] == 1:
        image = colour[..., 0]
    else:
        nonzero = [c for c in range(colour.shape[-1]) if colour[..., c].any()]
        if len(nonzero) == 1:
            image = colour[..., nonzero[0]]
        elif all(np.array_equal(colour[..., 0], colour[..., c]) for c in range(1, colour.shape[-1])):
            image = colour[..., 0]
        else:
            raise UnsupportedFormat(
                f"{name}: colour PNG with several distinct channels, expected a greyscale frame"
            )
    return Frame(np.ascontiguousarray(image), {}, name, 0)


def _read_npy(data: bytes, name: str, limits: Limits) -> list[Frame]:
    """A ``.npy`` array of counts, (H, W) or (N, H, W); integer or float, finite, 0..65535."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = _NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise UnsupportedFormat(f"{name}: .npy format version {version} is not supported")
        shape, _, dtype = read_header(stream)  # the header only: bounds are checked before loading
    except ValueError as err:
        raise InputError(f"{name}: corrupt .npy header ({err})") from err
    if dtype.hasobject or dtype.kind not in "uif":
        raise UnsupportedFormat(f"{name}: .npy dtype {dtype} is not a numeric image type")
    if dtype.itemsize < 2:
        raise UnsupportedFormat(f"{name}: .npy dtype {dtype} is 8-bit, expected 16-bit counts")
    if len(shape) not in (2, 3):
        raise InputError(f"{name}: .npy shape {shape}, expected (H, W) or (N, H, W)")
    height, width = shape[-2:]
    count = shape[0] if len(shape) == 3 else 1
    if not (0 < width <= limits.max_side and 0 < height <= limits.max_side):
        raise InputTooLarge(f"{name}: {width}x{height} pixels is outside 1..{limits.max_side} per side")
    if count > limits.max_frames:
        raise InputTooLarge(f"{name}: {count} frames, more than {limits.max_frames} (limit)")
    if count == 0:
        raise InputError(f"{name}: no frames")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as err:
        raise InputError(f"{name}: truncated or corrupt .npy data ({err})") from err
    if not np.isfinite(array).all():
        raise InputError(f"{name}: array holds NaN or infinite values")
    if array.min() < 0 or array.max() > 65535:
        raise InputError(f"{name}: values outside 0..65535 (got {array.min()}..{array.max()})")
    stack = np.rint(array).astype(np.uint16).reshape(count, height, width)
    return [Frame(image, {}, name, i) for i, image in enumerate(stack)]


# --------------------------------------------------------------------------------------------
# Writing


def encode_stream0(frames: list[Frame]) -> bytes:
    """Encode frames as one stream0 file (each frame with its full metadata)."""
    parts = []
    for frame in frames:
        image = np.asarray(frame.image)
        if image.dtype != np.uint16 or image.ndim != 2:
            raise InputError(f"frame {frame.index}: expected a 2-D uint16 image, got {image.dtype} {image.shape}")
        lines = b"".join(f'#"{k}" {v}\n'.encode("latin-1") for k, v in frame.metadata.items())
        height, width = image.shape
        header = b"P5\n" + lines + f"{width} {height}\n65535\n".encode()
        parts.append(header + image.astype(">u2").tobytes())
    return b"".join(parts)


def write_stream0(path: str | Path, frames: list[Frame]) -> Path:
    """Write frames as a stream0 file; gzip (with a fixed mtime, so bytes are reproducible)
    when the name ends in ``.gz``."""
    path = Path(path)
    data = encode_stream0(frames)
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    path.write_bytes(data)
    return path


def stream0_name(moment: datetime, site: str, imager: str) -> str:
    """The THEMIS file name of the minute holding ``moment``."""
    return f"{moment.astimezone(timezone.utc):%Y%m%d_%H%M}_{site}_{imager}_full.pgm.gz"
