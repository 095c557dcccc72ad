"""Request bodies for the tests: valid synthetic inputs, and the corpus of hostile and broken ones.

A :class:`Case` is what a client sends (body, Content-Type, the raw ``X-Filename`` header
bytes) and what it must get back: a 4xx status and ``{"error": message}`` where the message
starts with the cleaned name of the input and holds ``fragment``. One corpus serves every
level: the decoder (``tests/test_frames.py``, cases ``refused_by="decoder"``), the handler
without Java (``tests/test_handler.py``) and a real TorchServe (``tests/test_serving_e2e.py``).
Where a real TorchServe's frontend refuses the request before any worker sees it (an invalid
header, a body over ``max_request_size``), ``frontend`` is its answer: status and a fragment
of its body.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import numpy as np
import png
from urllib3 import encode_multipart_formdata

from arcscan.io.frames import Frame, Limits, encode_stream0, format_timestamp

START = datetime(2014, 3, 10, 6, 0, 0, 63119, tzinfo=timezone.utc)
LIMITS = Limits()
NAME = "bad.bin"
BOUNDARY = "arcscan-test-boundary"
INVALID_HTTP = (400, "Invalid HTTP message")  # TorchServe's own answer to a header Netty refuses


# ----------------------------------------------------------------------------- valid inputs


def minute(n: int = 2, shape: tuple[int, int] = (256, 256), seed: int = 0, **metadata: str) -> list[Frame]:
    """``n`` frames of noise over a bright disc, with stream0 metadata, 3 s apart."""
    rng = np.random.default_rng(seed)
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    disc = ((rows - shape[0] / 2) ** 2 + (cols - shape[1] / 2) ** 2) < (0.45 * min(shape)) ** 2
    frames = []
    for i in range(n):
        image = (3300 + disc * 4000 + rng.normal(0, 200, shape)).clip(0, 65535).astype(np.uint16)
        meta = {
            "Site unique ID": "gill",
            "Imager unique ID": "themis19",
            "Image request start": format_timestamp(START + timedelta(seconds=3 * i)),
            "Ccd background": "3300",
            **metadata,
        }
        frames.append(Frame(image, meta, "synthetic", i))
    return frames


def png16(image: np.ndarray, bitdepth: int = 16, **writer) -> bytes:
    """A PNG of an (H, W) greyscale or (H, W, planes) image; ``writer``: more ``png.Writer`` options."""
    height, width = image.shape[:2]
    planes = 1 if image.ndim == 2 else image.shape[2]
    options = {"greyscale": planes < 3, "alpha": planes in (2, 4), "bitdepth": bitdepth, **writer}
    buffer = io.BytesIO()
    png.Writer(width, height, **options).write(buffer, image.reshape(height, -1).tolist())
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def stream0(n: int = 1, **options) -> bytes:
    """A plain stream0 minute of ``n`` synthetic frames (see :func:`minute`)."""
    return encode_stream0(minute(n, **options))


def stream0_with_metadata(**metadata: str) -> bytes:
    """A one-frame stream0 body whose metadata lines say ``metadata`` (values a Frame would
    refuse, so they are written into the bytes, not into a Frame)."""
    body = stream0(1)
    for key, value in metadata.items():
        body = re.sub(rb'#"' + re.escape(key.encode()) + rb'" [^\n]*\n', b'#"' + key.encode() + b'" ' + value.encode() + b"\n", body, count=1)
    return body


def valid_bodies() -> dict[str, bytes]:
    """One small valid body of each accepted format, 256x256 pixels (for mutation tests)."""
    image = minute(1, seed=7)[0].image
    return {
        "stream0.pgm": stream0(1, seed=7),
        "stream0.pgm.gz": gzip.compress(stream0(1, seed=7), mtime=0),
        "frame.png": png16(image),
        "frame.npy": npy(image),
    }


# ----------------------------------------------------------------------------- crafted bytes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, idat: bytes, interlace: int = 0, before: bytes = b"", after: bytes = b"") -> bytes:
    """A 16-bit greyscale PNG with this header and image data (chunks ``before`` and ``after``
    the IHDR spliced in), chunk CRCs correct."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, interlace))
    return b"\x89PNG\r\n\x1a\n" + before + header + after + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _zeros_deflated(size: int) -> bytes:
    """``size`` zero bytes, deflated (about 1000:1)."""
    compress = zlib.compressobj(9)
    step = 2**20
    return b"".join(compress.compress(bytes(min(step, size - i))) for i in range(0, size, step)) + compress.flush()


def _gzip_members(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(part, mtime=0) for part in parts)


def _flip_gzip_crc(data: bytes) -> bytes:
    return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A float64 .npy header declaring any shape, without the data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _npy_raw_header(text: bytes) -> bytes:
    """A version 1.0 .npy header of any text."""
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def _multipart(fields: dict) -> tuple[bytes, str]:
    return encode_multipart_formdata(fields, boundary=BOUNDARY)


def _pgm(header: bytes, pixels: int) -> bytes:
    return b"P5\n" + header + b"\n" + bytes(pixels)


# ----------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Case:
    """One hostile request and the answer it must get (see the module docstring)."""

    id: str
    body: Callable[[], bytes]
    status: int
    fragment: str
    content_type: str = "application/octet-stream"
    filename: bytes | None = NAME.encode()
    shown: str = NAME
    refused_by: str = "decoder"  # or "handler": refused after decoding (size, metadata) or before (form, JSON)
    frontend: tuple[int, str] | None = None


def _name_case(id: str, filename: bytes, shown: str, frontend: tuple[int, str] | None = None) -> Case:
    """An X-Filename attack: any body (here junk) is answered with the name cleaned, never raw."""
    return Case(id, lambda: b"junk", 415, "not a recognised frame format", filename=filename, shown=shown,
                refused_by="handler", frontend=frontend)


def _form_case(id: str, fields: dict, status: int, fragment: str) -> Case:
    body, content_type = _multipart(fields)
    return Case(id, lambda: body, status, fragment, content_type=content_type, refused_by="handler")


MIB = 2**20
CASES: list[Case] = [
    # gzip: truncated, corrupt, bombs
    Case("gzip truncated", lambda: gzip.compress(stream0(2))[:5000], 400, "truncated gzip"),
    Case("gzip corrupt deflate", lambda: b"\x1f\x8b\x08\x00" + bytes(range(200)), 400, "corrupt gzip data"),
    Case("gzip wrong CRC", lambda: _flip_gzip_crc(gzip.compress(stream0())), 400, "corrupt gzip data (CRC check failed"),
    Case("gzip trailing garbage", lambda: gzip.compress(stream0()) + b"garbage", 400, "corrupt gzip data (Not a gzipped file"),
    Case("gzip bomb", lambda: gzip.compress(b"P5\n" + bytes(LIMITS.max_decompressed_bytes + MIB)), 413, "decompresses to more than"),
    Case("gzip multi-member bomb", lambda: _gzip_members(*[bytes(3 * MIB)] * 4), 413, "decompresses to more than"),
    Case("gzip inside gzip", lambda: gzip.compress(gzip.compress(stream0())), 400, "expected PGM magic 'P5' at byte 0, got b'\\x1f\\x8b'"),
    Case("gzip of whitespace only", lambda: gzip.compress(b" " * (LIMITS.max_decompressed_bytes - 16)), 400, "no frames"),
    # PGM headers: size, depth, maxval
    Case("pgm maxval 0", lambda: _pgm(b"256 256\n0", 2 * 256 * 256), 400, "maxval 0 is outside 1..65535"),
    Case("pgm maxval over 65535", lambda: _pgm(b"256 256\n65536", 2 * 256 * 256), 400, "maxval 65536 is outside 1..65535"),
    Case("pgm maxval 30 digits", lambda: _pgm(b"256 256\n" + b"9" * 30, 16), 400, "expected a number of at most 10 digits"),
    Case("pgm 65535 one byte short", lambda: _pgm(b"256 256\n65535", 2 * 256 * 256 - 1), 400, "truncated pixel data (131071 of 131072 bytes)"),
    Case("pgm 65535 bytes to spare", lambda: _pgm(b"256 256\n65535", 2 * 256 * 256 + 2), 400, "frame 1: expected PGM magic 'P5'"),
    Case("pgm truncated pixels", lambda: stream0()[:-10], 400, "truncated pixel data"),
    Case("pgm truncated header", lambda: b"P5\n256 256", 400, "truncated header"),
    Case("pgm negative width", lambda: _pgm(b"-256 256\n65535", 16), 400, "bad header field b'-256'"),
    Case("pgm zero width", lambda: _pgm(b"0 256\n65535", 16), 400, "0x256 pixels, an image needs at least one pixel"),
    Case("pgm huge width", lambda: _pgm(b"4000000000 256\n65535", 16), 413, "4000000000x256 pixels is over the limit of 1024"),
    Case("pgm width not a number", lambda: stream0().replace(b"256 256\n", b"25x 256\n", 1), 400, "bad header field b'25x'"),
    Case("pgm 8-bit", lambda: _pgm(b"256 256\n255", 256 * 256), 415, "8-bit PGM (maxval 255)"),
    Case("pgm ASCII P2", lambda: b"P2\n2 2\n65535\n0 0 0 0\n", 415, "netpbm type P2 is not supported"),
    Case("pgm 21 frames", lambda: stream0(21, shape=(16, 16)), 413, "more than 20 frames"),
    Case("pgm metadata flood", lambda: stream0(**{f"key {i}": "v" for i in range(LIMITS.max_metadata)}), 413, "metadata entries (limit)"),
    Case("pgm 1 MB metadata line", lambda: b'P5\n#"key" x' + b" " * MIB + b"y\n256 256\n65535\n", 400, "truncated pixel data (0 of"),
    Case("pgm wrong size", lambda: stream0(shape=(128, 256)), 400, "expected 256x256 pixels, got 256x128", refused_by="handler"),
    Case("pgm wrong size in a later frame", lambda: encode_stream0(minute(1) + [Frame(minute(1, shape=(200, 200))[0].image, {}, "", 1)]),
         400, "frame 1: expected 256x256 pixels, got 200x200", refused_by="handler"),
    Case("pgm bad timestamp", lambda: stream0_with_metadata(**{"Image request start": "yesterday"}), 400, "unreadable timestamp"),
    Case("pgm bad ccd background", lambda: stream0_with_metadata(**{"Ccd background": "dark"}), 400, "unreadable CCD background"),
    # PNG: depth, colour, corrupt, bombs
    Case("png 8-bit grey", lambda: png16(np.zeros((256, 256), np.uint8), bitdepth=8), 415, "8-bit PNG"),
    Case("png 8-bit RGB", lambda: png16(np.zeros((256, 256, 3), np.uint8), bitdepth=8), 415, "8-bit PNG"),
    Case("png 1-bit", lambda: png16(np.zeros((256, 256), np.uint8), bitdepth=1), 415, "1-bit PNG"),
    Case("png palette", lambda: png16(np.zeros((256, 256), np.uint8), bitdepth=8, greyscale=False, alpha=False, palette=[(0, 0, 0), (9, 9, 9)]),
         415, "8-bit PNG"),
    Case("png RGBA 16-bit distinct channels", lambda: png16(np.stack([np.full((256, 256), v, np.uint16) for v in (1, 2, 3, 65535)], axis=2)),
         415, "several distinct channels"),
    Case("png wrong size", lambda: png16(np.zeros((64, 64), np.uint16)), 400, "expected 256x256", refused_by="handler"),
    Case("png truncated", lambda: png16(np.zeros((256, 256), np.uint16))[:60], 400, "corrupt PNG"),
    Case("png corrupt deflate, CRC correct", lambda: raw_png(256, 256, b"\x78\x9c" + b"\xff" * 64), 400, "corrupt PNG (Error -3"),
    Case("png bomb", lambda: raw_png(256, 256, _zeros_deflated(256 * MIB)), 400, "inflates to more than the 131328 bytes its header declares"),
    Case("png huge dimensions", lambda: raw_png(100_000, 100_000, _zeros_deflated(1000)), 413, "100000x100000 pixels is over the limit"),
    Case("png zero height", lambda: raw_png(256, 0, _zeros_deflated(0)), 400, "256x0 pixels, an image needs at least one pixel"),
    Case("png chunk before IHDR", lambda: raw_png(256, 256, _zeros_deflated(131328), before=_png_chunk(b"sBIT", b"\x10")), 400,
         "corrupt PNG (first chunk b'sBIT'"),
    Case("png second IHDR", lambda: raw_png(8, 8, _zeros_deflated(136), after=_png_chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 256, 16, 0, 0, 0, 0))),
         400, "a second IHDR chunk"),
    Case("png interlaced, no image data", lambda: raw_png(256, 256, _zeros_deflated(0), interlace=1), 400, "inflates to 0 bytes, its header declares"),
    Case("png interlace method 2", lambda: raw_png(256, 256, _zeros_deflated(0), interlace=2), 400, "interlace 2"),
    # .npy: depth, dtype, values, shape, header
    Case("npy 8-bit", lambda: npy(np.zeros((256, 256), np.uint8)), 415, ".npy dtype uint8 is 8-bit"),
    Case("npy int32 negative", lambda: npy(np.full((256, 256), -1, np.int32)), 400, "values outside 0..65535 (got -1..-1)"),
    Case("npy float32 over 65535", lambda: npy(np.full((256, 256), 70000, np.float32)), 400, "values outside 0..65535 (got 70000..70000)"),
    Case("npy int64 huge", lambda: npy(np.full((256, 256), 2**40, np.int64)), 400, "values outside 0..65535"),
    Case("npy NaN", lambda: npy(np.full((256, 256), np.nan, np.float32)), 400, "NaN or infinite"),
    Case("npy +inf", lambda: npy(np.full((256, 256), np.inf)), 400, "NaN or infinite"),
    Case("npy -inf", lambda: npy(np.full((256, 256), -np.inf, np.float16)), 400, "NaN or infinite"),
    Case("npy complex", lambda: npy(np.zeros((256, 256), np.complex64)), 415, "not a numeric image type"),
    Case("npy bool", lambda: npy(np.zeros((256, 256), bool)), 415, "not a numeric image type"),
    Case("npy object (pickle)", lambda: npy(np.array([[None]], object)), 415, "not a numeric image type"),
    Case("npy 4-D", lambda: npy(np.zeros((2, 3, 4, 4), np.uint16)), 400, "expected (H, W) or (N, H, W)"),
    Case("npy 21 frames", lambda: npy(np.zeros((21, 8, 8), np.uint16)), 413, "21 frames, more than 20"),
    Case("npy truncated", lambda: npy(np.zeros((256, 256), np.uint16))[:1000], 400, "truncated .npy data (872 of 131072 bytes)"),
    Case("npy header claims 160 MB", lambda: _npy_header((20, 1024, 1024)) + bytes(8), 400, "truncated .npy data (8 of 167772160 bytes)"),
    Case("npy negative shape", lambda: _npy_header((-4, 4)), 400, "an image needs at least one pixel"),
    Case("npy version 3", lambda: npy(np.zeros((4, 4), np.uint16)).replace(b"\x01\x00", b"\x03\x00", 1), 415, "format version (3, 0)"),
    Case("npy header not a dict", lambda: _npy_raw_header(b"{'descr': 'x'} \n"), 400, "corrupt .npy header"),
    Case("npy header tokenizer error", lambda: _npy_raw_header(b"{'descr'[: '<u2', 'fortran_order': False, 'shape': (256, 256), }"), 400,
         "corrupt .npy header"),
    Case("npy header unhashable key", lambda: _npy_raw_header(b"{[]: 1}"), 400, "corrupt .npy header (unhashable type"),
    # bodies
    Case("empty body", lambda: b"", 400, "empty input"),
    Case("body over the size limit", lambda: b"\x1f\x8b" + bytes(LIMITS.max_bytes - 1), 413, "exceeds the limit", frontend=(413, "")),
    Case("GIF", lambda: b"GIF89a" + bytes(100), 415, "not a recognised frame format"),
    Case("npz archive", lambda: b"PK\x03\x04" + bytes(100), 415, "not a recognised frame format"),
    # content types
    Case("JSON object", lambda: b'{"image": [1, 2, 3]}', 415, "got a JSON body", content_type="application/json", refused_by="handler"),
    Case("JSON null", lambda: b"null", 415, "got a JSON body", content_type="application/json", refused_by="handler"),
    Case("text/plain", lambda: b"hello, world", 415, "not a recognised frame format", content_type="text/plain"),
    _form_case("multipart without a file", {}, 400, "no file in the request"),
    _form_case("multipart, two fields, no 'data'", {"a": "1", "b": ("f.png", b"x", "image/png")}, 400, "fields ['a', 'b']"),
    Case("form-encoded fields", lambda: b"a=1&b=2", 400, "fields ['a', 'b']", content_type="application/x-www-form-urlencoded", refused_by="handler"),
    Case("form-encoded, empty", lambda: b"", 400, "no file in the request", content_type="application/x-www-form-urlencoded", refused_by="handler"),
    # X-Filename: path-like, control characters, NUL, very long
    _name_case("name ../../etc/passwd", b"../../etc/passwd", "passwd"),
    _name_case("name absolute path", b"/etc/shadow", "shadow"),
    _name_case("name Windows path", b"C:\\Windows\\win.ini", "win.ini"),
    _name_case("name ..", b"..", "upload"),
    _name_case("name NUL byte", b"a\x00b.pgm", "ab.pgm", frontend=INVALID_HTTP),
    _name_case("name ANSI escape", b"\x1b[31mred.pgm\x7f", "[31mred.pgm"),
    _name_case("name bidi override, line separator", "\u202egnp.exe\u2028x.pgm".encode(), "gnp.exex.pgm"),
    _name_case("name UTF-8", "Gillam näme.pgm".encode(), "Gillam näme.pgm"),
    _name_case("name 5000 characters", b"n" * 5000, "n" * 200),
    _name_case("name over the header limit", b"n" * 9000, "n" * 200, frontend=INVALID_HTTP),
]
