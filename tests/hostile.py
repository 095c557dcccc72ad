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
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import cdflib
import numpy as np
import png
from astropy.io import fits
from cdflib.cdfwrite import CDF as CDFWriter
from PIL import Image
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


def pillow(image: np.ndarray, format: str, **options) -> bytes:
    """An image (any array or mode Pillow takes) saved by Pillow as ``format`` (TIFF, JPEG, PNG)."""
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format, **options)
    return buffer.getvalue()


def fits_file(image: np.ndarray, **cards) -> bytes:
    """A FITS file whose primary HDU holds ``image`` (as its dtype says) and header ``cards``."""
    hdu = fits.PrimaryHDU(image)
    hdu.header.update(cards)
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


def cdf_file(images: np.ndarray, times: list[datetime], variable: str = "thg_asf_test", compress: int = 6) -> bytes:
    """A THEMIS level-1 style CDF: ``images`` (N, H, W) uint16 in ``variable`` (gzip level
    ``compress``, 0 for none), their times in ``<variable>_epoch`` (CDF_EPOCH), written by cdflib."""
    epochs = [cdflib.cdfepoch.compute_epoch([*t.timetuple()[:6], t.microsecond // 1000]) for t in times]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frames.cdf"
        writer = CDFWriter(str(path), cdf_spec={"Majority": "row_major"})
        writer.write_var({"Variable": variable, "Data_Type": 12, "Num_Elements": 1, "Rec_Vary": True,
                          "Dim_Sizes": list(images.shape[1:]), "Compress": compress}, var_attrs={}, var_data=images)
        writer.write_var({"Variable": f"{variable}_epoch", "Data_Type": 31, "Num_Elements": 1, "Rec_Vary": True,
                          "Dim_Sizes": []}, var_attrs={}, var_data=np.array(epochs))
        writer.close()
        return path.read_bytes()


def valid_bodies() -> dict[str, bytes]:
    """One small valid body of each accepted format, 256x256 pixels (for mutation tests)."""
    frame = minute(1, seed=7)[0]
    image, image8 = frame.image, (frame.image >> 8).astype(np.uint8)
    return {
        "stream0.pgm": stream0(1, seed=7),
        "stream0.pgm.gz": gzip.compress(stream0(1, seed=7), mtime=0),
        "frame.png": png16(image),
        "frame8.png": png16(image8, bitdepth=8),
        "frame.npy": npy(image),
        "frame.tif": pillow(image, "TIFF"),
        "frame.jpg": pillow(image8, "JPEG"),
        "frame.fits": fits_file(image.astype(">i2")),
        "frame.cdf": cdf_file(image[np.newaxis], [frame.timestamp]),
    }


# ----------------------------------------------------------------------------- crafted bytes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, idat: bytes, interlace: int = 0, before: bytes = b"", after: bytes = b"", bitdepth: int = 16) -> bytes:
    """A greyscale PNG (16-bit unless told) with this header and image data (chunks ``before``
    and ``after`` the IHDR spliced in), chunk CRCs correct."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bitdepth, 0, 0, 0, interlace))
    return b"\x89PNG\r\n\x1a\n" + before + header + after + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _zeros_deflated(size: int, wbits: int = 15) -> bytes:
    """``size`` zero bytes, deflated (about 1000:1) as a zlib stream (``wbits`` 31: gzip)."""
    compress = zlib.compressobj(9, wbits=wbits)
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


def _tiff(width: int, height: int, strip: bytes, bits: tuple[int, ...] = (8,), photometric: int = 1, compression: int = 1) -> bytes:
    """A little-endian TIFF of one strip whose header says this, whatever the strip holds."""
    extra = 8 + 2 + 9 * 12 + 4  # where values that do not fit in a tag go: after the IFD
    bits_value, extra_data = (bits[0], b"") if len(bits) == 1 else (extra, struct.pack(f"<{len(bits)}H", *bits))
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, len(bits), bits_value), (259, 3, 1, compression),
            (262, 3, 1, photometric), (273, 4, 1, extra + len(extra_data)), (277, 3, 1, len(bits)), (278, 4, 1, height),
            (279, 4, 1, len(strip))]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *tag) for tag in tags) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + extra_data + strip


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims ``width`` x ``height``."""
    body = bytearray(pillow(np.zeros((16, 16), np.uint8), "JPEG"))
    start = body.index(b"\xff\xc0")
    body[start + 5 : start + 9] = struct.pack(">HH", height, width)
    return bytes(body)


def _jpeg_scans(extra: int) -> bytes:
    """A progressive JPEG with its last scan repeated ``extra`` times."""
    body = pillow(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8), "JPEG", progressive=True)
    last = body.rindex(b"\xff\xda")
    return body[:last] + body[last:-2] * (extra + 1) + body[-2:]


def _fits_header(**cards) -> bytes:
    """A FITS primary header (whole 2880-byte blocks) of these cards, no data."""
    return fits.Header(list(cards.items())).tostring().encode()


def _cdf_patch(body: bytes, offset: int, fmt: str, *values) -> bytes:
    return body[:offset] + struct.pack(">" + fmt, *values) + body[offset + struct.calcsize(">" + fmt) :]


def _cdf_gdr(body: bytes) -> int:
    """Where a version 3 CDF's global descriptor record starts (after the descriptor record)."""
    return 8 + struct.unpack(">q", body[8:16])[0]


def _cdf_with_dims(height: int, width: int) -> bytes:
    """A one-frame 8x8 CDF whose image variable claims ``height`` x ``width`` pixels."""
    body = cdf_file(np.zeros((1, 8, 8), np.uint16), [START])
    return _cdf_patch(body, body.index(b"thg_asf_test\x00") - 84 + 344, "ii", height, width)


def _cdf_block_bomb(inflated: int) -> bytes:
    """A one-frame 8x8 CDF whose compressed data block is replaced (at the end of the file)
    by a gzip member inflating to ``inflated`` bytes."""
    body = cdf_file(np.zeros((1, 8, 8), np.uint16), [START])
    block = body.index(b"\x1f\x8b") - 24
    assert struct.unpack(">i", body[block + 8 : block + 12]) == (13,)  # a CVVR
    packed = _zeros_deflated(inflated, wbits=31)
    bomb = struct.pack(">qiiq", 24 + len(packed), 13, 0, len(packed)) + packed
    return body.replace(struct.pack(">q", block), struct.pack(">q", len(body)), 1) + bomb


def _cdf_looping_chain() -> bytes:
    """A CDF whose first zVariable descriptor names itself as the next one."""
    body = cdf_file(np.zeros((1, 8, 8), np.uint16), [START])
    (head,) = struct.unpack(">q", body[_cdf_gdr(body) + 20 : _cdf_gdr(body) + 28])
    return _cdf_patch(body, head + 12, "q", head)


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
    Case("pgm 61 frames", lambda: stream0(61, shape=(16, 16)), 413, "more than 60 frames"),
    Case("pgm metadata flood", lambda: stream0(**{f"key {i}": "v" for i in range(LIMITS.max_metadata)}), 413, "metadata entries (limit)"),
    Case("pgm 1 MB metadata line", lambda: b'P5\n#"key" x' + b" " * MIB + b"y\n256 256\n65535\n", 400, "truncated pixel data (0 of"),
    Case("pgm bad timestamp", lambda: stream0_with_metadata(**{"Image request start": "yesterday"}), 400, "unreadable timestamp"),
    Case("pgm bad ccd background", lambda: stream0_with_metadata(**{"Ccd background": "dark"}), 400, "unreadable CCD background"),
    # (frames of any size up to Limits.max_side are answered now: tests/test_handler.py)
    # PNG: depth, colour, corrupt, bombs
    # (8-bit PNG, and colour PNG with several distinct channels, are read now: tests/test_readers.py)
    Case("png 1-bit", lambda: png16(np.zeros((256, 256), np.uint8), bitdepth=1), 415, "1-bit PNG, expected 8- or 16-bit"),
    Case("png 4-bit", lambda: png16(np.zeros((256, 256), np.uint8), bitdepth=4), 415, "4-bit PNG, expected 8- or 16-bit"),
    Case("png palette", lambda: png16(np.zeros((256, 256), np.uint8), bitdepth=8, greyscale=False, alpha=False, palette=[(0, 0, 0), (9, 9, 9)]),
         415, "palette (indexed-colour) PNG"),
    Case("png 8-bit bomb", lambda: raw_png(256, 256, _zeros_deflated(256 * MIB), bitdepth=8), 400, "inflates to more than the 65792 bytes its header declares"),
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
    # TIFF: corrupt, truncated, bombs, depth, colour
    Case("tiff truncated", lambda: pillow(np.zeros((256, 256), np.uint16), "TIFF")[:4000], 400, "corrupt TIFF"),
    Case("tiff corrupt", lambda: b"II*\x00" + bytes(range(256)) * 4, 400, "corrupt TIFF"),
    Case("tiff claims 100000x100000", lambda: _tiff(100_000, 100_000, zlib.compress(bytes(MIB)), compression=8), 413, "pixels per side"),
    Case("tiff claims 5000x5000", lambda: _tiff(5000, 5000, zlib.compress(bytes(MIB)), compression=8), 413, "5000x5000 pixels is over the limit of 1024"),
    Case("tiff zero width", lambda: _tiff(0, 256, b""), 400, "corrupt TIFF"),
    Case("tiff 1-bit", lambda: pillow(np.zeros((256, 256), bool), "TIFF"), 415, "1-bit (bilevel) TIFF"),
    Case("tiff palette", lambda: pillow(Image.new("P", (256, 256)), "TIFF"), 415, "palette (indexed-colour) TIFF"),
    Case("tiff CMYK", lambda: pillow(Image.new("CMYK", (256, 256)), "TIFF"), 415, "CMYK TIFF is not supported"),
    Case("tiff 16-bit RGB", lambda: _tiff(256, 256, bytes(256 * 256 * 6), bits=(16, 16, 16), photometric=2), 415, "16-bit colour TIFF"),
    Case("tiff float NaN", lambda: pillow(np.full((256, 256), np.nan, np.float32), "TIFF"), 400, "NaN or infinite"),
    Case("tiff 61 pages", lambda: pillow(Image.new("L", (8, 8)), "TIFF", save_all=True, append_images=[Image.new("L", (8, 8))] * 60), 413,
         "more than 60 frames"),
    # JPEG: corrupt, truncated, bombs, colour, scans
    Case("jpeg truncated", lambda: pillow(np.zeros((256, 256), np.uint8), "JPEG")[:300], 400, "corrupt JPEG"),
    Case("jpeg corrupt", lambda: b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, 400, "corrupt JPEG"),
    Case("jpeg claims 65000x65000", lambda: _jpeg_claiming(65000, 65000), 413, "pixels per side"),
    Case("jpeg claims 5000x5000", lambda: _jpeg_claiming(5000, 5000), 413, "5000x5000 pixels is over the limit of 1024"),
    Case("jpeg CMYK", lambda: pillow(Image.new("CMYK", (256, 256)), "JPEG"), 415, "CMYK JPEG is not supported"),
    Case("jpeg 150 scans", lambda: _jpeg_scans(150), 413, "scans, more than 100 (limit)"),
    # FITS: header, truncation, sizes, samples
    Case("fits truncated header", lambda: fits_file(np.zeros((256, 256), ">i2"))[:300], 400, "truncated FITS header (no END card"),
    Case("fits truncated data", lambda: fits_file(np.zeros((256, 256), ">i2"))[:-4000], 400, "truncated FITS data"),
    Case("fits header flood", lambda: _fits_header(SIMPLE=True, BITPIX=16, NAXIS=0, **{f"K{i}": i for i in range(300)}), 413,
         "FITS header of more than 256 cards (limit)"),
    Case("fits claims 100000x256", lambda: _fits_header(SIMPLE=True, BITPIX=16, NAXIS=2, NAXIS1=100_000, NAXIS2=256) + bytes(2880), 413,
         "100000x256 pixels is over the limit of 1024"),
    Case("fits claims 1024x1024, has 2880 bytes", lambda: _fits_header(SIMPLE=True, BITPIX=-64, NAXIS=2, NAXIS1=1024, NAXIS2=1024) + bytes(2880), 400,
         "truncated FITS data (2880 of 8388608 bytes)"),
    Case("fits BITPIX 7", lambda: _fits_header(SIMPLE=True, BITPIX=7, NAXIS=2, NAXIS1=8, NAXIS2=8) + bytes(2880), 400, "BITPIX 7"),
    Case("fits NAXIS 4", lambda: fits_file(np.zeros((1, 1, 8, 8), ">i2")), 400, "expected a 2-D image or an (N, H, W) stack"),
    Case("fits no primary image", lambda: fits_file(None), 415, "no image in the FITS primary HDU"),
    Case("fits 61 frames", lambda: fits_file(np.zeros((61, 8, 8), ">i2")), 413, "61 frames, more than 60"),
    Case("fits float NaN", lambda: fits_file(np.full((256, 256), np.nan, ">f4")), 400, "NaN or infinite"),
    Case("fits int32 over 65535", lambda: fits_file(np.full((256, 256), 70000, ">i4")), 400, "values outside 0..65535 (got 70000..70000)"),
    Case("fits bad DATE-OBS", lambda: fits_file(np.zeros((256, 256), ">i2"), **{"DATE-OBS": "2015-10-07Tnoon"}), 400, "unreadable FITS exposure time"),
    # CDF: corrupt, truncated, bombs, structure loops, sizes, versions
    Case("cdf truncated", lambda: cdf_file(minute(2)[0].image[np.newaxis], [START])[:3000], 400, "corrupt CDF"),
    Case("cdf corrupt variable count", lambda: (lambda b: _cdf_patch(b, _cdf_gdr(b) + 60, "i", 2**31 - 1))(cdf_file(np.zeros((1, 8, 8), np.uint16), [START])),
         400, "corrupt CDF (2147483647 zVariables"),
    Case("cdf looping variable chain", _cdf_looping_chain, 400, "variable chain loops back"),
    Case("cdf compressed block bomb", lambda: _cdf_block_bomb(64 * MIB), 400, "a compressed block inflates to more than the 128 bytes its records need"),
    Case("cdf claims 100000x100000", lambda: _cdf_with_dims(100_000, 100_000), 413, "100000x100000 pixels is over the limit of 1024"),
    Case("cdf 61 frames", lambda: cdf_file(np.zeros((61, 8, 8), np.uint16), [START] * 61), 413, "61 frames, more than 60"),
    Case("cdf without an image variable", lambda: cdf_file(np.zeros((1, 8, 8), np.uint16), [START], variable="counts"), 415,
         "CDF with 0 THEMIS image variables"),
    Case("cdf version 2", lambda: b"\xcd\xf2\x60\x02" + bytes(1000), 415, "CDF version 2 file"),
    Case("cdf whole-file compressed", lambda: b"\xcd\xf3\x00\x01\xcc\xcc\x00\x01" + bytes(1000), 415, "whole-file compressed CDF"),
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
    Case("npy 61 frames", lambda: npy(np.zeros((61, 8, 8), np.uint16)), 413, "61 frames, more than 60"),
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
