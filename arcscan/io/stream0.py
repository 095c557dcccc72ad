"""THEMIS ASI stream0 files (``.pgm`` / ``.pgm.gz``): reading within limits, and writing.

A stream0 file holds one minute (up to 20 frames at 3 s cadence). Each frame is a binary PGM
(``P5``) whose header carries metadata comment lines ``#"key" value``; the first frame has
the full set, later frames only what changed, so a frame's metadata is the running union.
Pixels are 16-bit big-endian (``maxval 65535``). Frames are returned as stored (raw stream0
may be flipped relative to the level-1 CDF frames and the skymaps).
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from arcscan.errors import InputError, InputTooLarge, UnsupportedFormat
from arcscan.io.base import Frame, Limits, check_size

_META_LINE = re.compile(rb'^#"([^"]*)"(.*)$')  # value stripped after: no backtracking on long lines
_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_HEADER_TOKEN = re.compile(rb"[^ \t\r\n]{1,11}")
_MAX_DIGITS = 10


def read_gzip(data: bytes, name: str, limits: Limits) -> list[Frame]:
    """A gzip-compressed stream0 file, inflated no further than ``limits.max_decompressed_bytes``."""
    return read_pgm(_gunzip(data, name, limits), name, limits)


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
    return _WHITESPACE.match(data, pos).end()


def read_pgm(data: bytes, name: str, limits: Limits) -> list[Frame]:
    """An uncompressed stream0 file: one or more ``P5`` frames, each after its metadata lines."""
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
        check_size(where, width, height, limits)
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
