"""All-sky imager frames in and out: THEMIS stream0 (``.pgm`` / ``.pgm.gz``), 16-bit PNG, ``.npy``.

A THEMIS stream0 file holds one minute (up to 20 frames at 3 s cadence). Each frame is a
binary PGM (``P5``) whose header carries metadata comment lines ``#"key" value``; the first
frame has the full set, later frames only what changed, so a frame's metadata is the running
union. Pixels are 16-bit big-endian (``maxval 65535``).

Everything that decodes untrusted bytes goes through :func:`decode_frames`, which enforces
:class:`Limits` *before* allocating (body size, decompressed size, dimensions, frame count,
metadata entries), checks PNG and ``.npy`` headers before their parsers trust them, and
raises :class:`~arcscan.errors.InputError` subclasses naming the input and the problem.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import tokenize
import unicodedata
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import png

from arcscan.errors import InputError, InputTooLarge, UnsupportedFormat

TIMESTAMP_KEY = "Image request start"
_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_META_LINE = re.compile(rb'^#"([^"]*)"(.*)$')  # value stripped after: no backtracking on long lines
_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_HEADER_TOKEN = re.compile(rb"[^ \t\r\n]{1,11}")
_MAX_DIGITS = 10
# Unicode categories dropped from client-given names: controls, format (bidi overrides), surrogates,
# private use, unassigned, line and paragraph separators.
_HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
# What numpy's .npy header parser (ast.literal_eval, a tokenize pass, np.dtype) raises on a malformed header.
_NPY_HEADER_ERRORS = (ValueError, TypeError, SyntaxError, OverflowError, tokenize.TokenError)
_PNG_PLANES = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (grey, RGB, grey+alpha, RGBA)
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))  # x0, y0, dx, dy
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
    max_metadata: int = 256  # distinct stream0 metadata keys (a THEMIS header has about 30)


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
        stamp, background = self.metadata.get(TIMESTAMP_KEY), self.metadata.get("Ccd background")
        try:
            moment = datetime.strptime(stamp.removesuffix("UTC").strip(), _TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc) if stamp else None
        except ValueError as err:
            raise InputError(f"{where}: unreadable timestamp {stamp[:40]!r}") from err
        try:
            level = float(background) if background else None
        except ValueError as err:
            raise InputError(f"{where}: unreadable CCD background {background[:40]!r}") from err
        for name, value in (("site", self.metadata.get("Site unique ID", "")), ("imager", self.metadata.get("Imager unique ID", "")), ("timestamp", moment), ("ccd_background", level)):
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


def _check_size(where: str, width: int, height: int, limits: Limits) -> None:
    """Refuse an image with no pixels (400) or a side over ``limits.max_side`` (413)."""
    if width <= 0 or height <= 0:
        raise InputError(f"{where}: {width}x{height} pixels, an image needs at least one pixel per side")
    if width > limits.max_side or height > limits.max_side:
        raise InputTooLarge(f"{where}: {width}x{height} pixels is over the limit of {limits.max_side} per side")


def _skip_whitespace(data: bytes, pos: int) -> int:
    return _WHITESPACE.match(data, pos).end()


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
                    key, value = match.group(1).decode("latin-1"), match.group(2).strip().decode("latin-1")
                    metadata[key] = value
                    if len(metadata) > limits.max_metadata:
                        raise InputTooLarge(f"{where}: more than {limits.max_metadata} metadata entries (limit)")
                pos = end + 1
                continue
            token = _HEADER_TOKEN.match(data, pos).group()
            if not token.isdigit() or len(token) > _MAX_DIGITS:
                raise InputError(f"{where}: bad header field {token!r}, expected a number of at most {_MAX_DIGITS} digits")
            numbers.append(int(token))
            pos += len(token)
        width, height, maxval = numbers
        _check_size(where, width, height, limits)
        if not 0 < maxval <= 65535:
            raise InputError(f"{where}: maxval {maxval} is outside 1..65535")
        if maxval < 256:
            raise UnsupportedFormat(f"{where}: 8-bit PGM (maxval {maxval}), expected 16-bit (maxval 65535)")
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
        _check_png(data, name, limits)
        width, height, rows, info = png.Reader(bytes=data).read()
        planes = info["planes"]
        pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except (png.Error, zlib.error) as err:
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


def _check_png(data: bytes, name: str, limits: Limits) -> None:
    """Check a PNG's layout before pypng decodes it: pypng trusts it (misplaced or short chunks
    fail with AttributeError or IndexError) and inflates the image data with no bound.

    The first chunk must be a 16-bit IHDR within ``limits``, the only one; the image data
    (IDAT chunks) must inflate to exactly the size the header declares, and is inflated
    no further than that.
    """
    chunks = png.Reader(bytes=data).chunks()
    kind, header = next(chunks)
    if kind != b"IHDR" or len(header) != 13:
        raise InputError(f"{name}: corrupt PNG (first chunk {kind!r} of {len(header)} bytes, expected IHDR)")
    width, height, bitdepth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", header)
    _check_size(name, width, height, limits)
    if bitdepth != 16:
        raise UnsupportedFormat(f"{name}: {bitdepth}-bit PNG, expected 16-bit")
    if colour not in _PNG_PLANES or compression or filtering or interlace > 1:
        raise InputError(
            f"{name}: corrupt PNG (colour type {colour}, compression {compression}, filter {filtering}, interlace {interlace})"
        )
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    pixel_bytes = 2 * _PNG_PLANES[colour]
    expected = 0
    for x0, y0, dx, dy in passes:
        columns, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if columns > 0 and rows > 0:
            expected += rows * (1 + columns * pixel_bytes)  # a filter-type byte starts each row
    inflate, size = zlib.decompressobj(), 0
    for kind, chunk in chunks:
        if kind == b"IHDR":
            raise InputError(f"{name}: corrupt PNG (a second IHDR chunk)")
        if kind == b"IDAT":
            size += len(inflate.decompress(chunk, expected - size + 1))
            if size > expected:
                raise InputError(f"{name}: corrupt PNG (image data inflates to more than the {expected} bytes its header declares)")
    if size != expected:
        raise InputError(f"{name}: corrupt PNG (image data inflates to {size} bytes, its header declares {expected})")


def _read_npy(data: bytes, name: str, limits: Limits) -> list[Frame]:
    """A ``.npy`` array of counts, (H, W) or (N, H, W); integer or float, finite, 0..65535."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = _NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise UnsupportedFormat(f"{name}: .npy format version {version} is not supported")
        shape, fortran_order, dtype = read_header(stream)  # the header only: bounds are checked before reading
    except _NPY_HEADER_ERRORS as err:
        raise InputError(f"{name}: corrupt .npy header ({err})") from err
    if dtype.hasobject or dtype.kind not in "uif":
        raise UnsupportedFormat(f"{name}: .npy dtype {dtype} is not a numeric image type")
    if dtype.itemsize < 2:
        raise UnsupportedFormat(f"{name}: .npy dtype {dtype} is 8-bit, expected 16-bit counts")
    if len(shape) not in (2, 3):
        raise InputError(f"{name}: .npy shape {shape}, expected (H, W) or (N, H, W)")
    height, width = shape[-2:]
    count = shape[0] if len(shape) == 3 else 1
    _check_size(name, width, height, limits)
    if count > limits.max_frames:
        raise InputTooLarge(f"{name}: {count} frames, more than {limits.max_frames} (limit)")
    if count <= 0:
        raise InputError(f"{name}: no frames")
    values = count * height * width
    offset = stream.tell()
    if len(data) - offset < values * dtype.itemsize:
        raise InputError(f"{name}: truncated .npy data ({len(data) - offset} of {values * dtype.itemsize} bytes)")
    array = np.frombuffer(data, dtype, values, offset).reshape(shape, order="F" if fortran_order else "C")
    if not np.isfinite(array).all():
        raise InputError(f"{name}: array holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 65535:
        raise InputError(f"{name}: values outside 0..65535 (got {low:g}..{high:g})")
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
