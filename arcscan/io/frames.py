"""All-sky imager frames in and out: one entry point for every format, recognised by content.

Read: THEMIS stream0 (``.pgm`` / ``.pgm.gz``, :mod:`~arcscan.io.stream0`), THEMIS level-1
CDF (:mod:`~arcscan.io.cdf`), FITS such as Poker Flat DASC (:mod:`~arcscan.io.fits`), 8- and
16-bit PNG, TIFF and JPEG, greyscale or colour (:mod:`~arcscan.io.images`), ``.npy``
(:mod:`~arcscan.io.npy`). Every frame is ``uint16`` counts (8-bit images scaled by 257), up to
``Limits.max_side`` pixels per side, any shape. Write: stream0.

Everything that decodes untrusted bytes goes through :func:`decode_frames`, which recognises
the format from the leading bytes (never from the name), enforces :class:`Limits` *before*
allocating (body size, decompressed size, dimensions, frame count, metadata entries) and
raises :class:`~arcscan.errors.InputError` subclasses whose message starts with the input's
name: 400 malformed, 413 over a limit, 415 a format or depth arcscan does not read.
"""

from __future__ import annotations

from pathlib import Path

from arcscan.errors import InputError, InputTooLarge, UnsupportedFormat
from arcscan.io import cdf, fits, images, npy, stream0
from arcscan.io.base import FILE_LIMITS, TIMESTAMP_KEY, Frame, Limits, format_timestamp, input_name
from arcscan.io.images import CHANNELS
from arcscan.io.stream0 import encode_stream0, stream0_name, write_stream0

__all__ = [
    "CHANNELS", "FILE_LIMITS", "TIMESTAMP_KEY", "Frame", "Limits", "decode_frames", "encode_stream0", "format_timestamp",
    "input_name", "read_frames", "stream0_name", "write_stream0",
]

_NETPBM_OTHER = (b"P1", b"P2", b"P3", b"P4", b"P6")


def decode_frames(data: bytes, name: str = "input", limits: Limits = Limits(), channel: str = "auto") -> list[Frame]:
    """Decode every frame of a file given as bytes (any format of the module docstring).

    ``name`` is used in messages only. ``channel`` picks what a colour image gives:
    ``"auto"`` (the one channel carrying data, else the luminance), ``"red"``, ``"green"``,
    ``"blue"`` or ``"luminance"`` (see :mod:`arcscan.io.images`); greyscale formats ignore it.
    """
    if not data:
        raise InputError(f"{name}: empty input")
    if len(data) > limits.max_bytes:
        raise InputTooLarge(f"{name}: {len(data)} bytes exceeds the limit of {limits.max_bytes}")
    images.check_channel(channel, name)
    head = data[:9]
    if head.startswith(b"\x1f\x8b"):
        return stream0.read_gzip(data, name, limits)
    if head.startswith((b"P5", b"#")):
        return stream0.read_pgm(data, name, limits)
    if head.startswith(images.PNG_SIGNATURE):
        return images.read_png(data, name, limits, channel)
    if head.startswith(images.TIFF_MAGICS):
        return images.read_tiff(data, name, limits, channel)
    if head.startswith(images.JPEG_MAGIC):
        return images.read_jpeg(data, name, limits, channel)
    if head.startswith(fits.MAGIC):
        return fits.read_fits(data, name, limits)
    if head.startswith((cdf.MAGIC_V3, cdf.MAGIC_V2)):
        return cdf.read_cdf(data, name, limits)
    if head.startswith(b"\x93NUMPY"):
        return npy.read_npy(data, name, limits)
    if head.startswith(_NETPBM_OTHER):
        raise UnsupportedFormat(f"{name}: netpbm type {data[:2].decode()} is not supported, expected binary PGM (P5)")
    raise UnsupportedFormat(
        f"{name}: not a recognised frame format (expected THEMIS stream0 .pgm/.pgm.gz or CDF, FITS, PNG, TIFF, JPEG or .npy)"
    )


def read_frames(path: str | Path, limits: Limits = FILE_LIMITS, channel: str = "auto") -> list[Frame]:
    """Read every frame of a local file (any format :func:`decode_frames` accepts), within
    :data:`FILE_LIMITS` unless other ``limits`` are given."""
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise InputTooLarge(f"{path.name}: {size} bytes exceeds the limit of {limits.max_bytes}")
    return decode_frames(path.read_bytes(), path.name, limits, channel)
