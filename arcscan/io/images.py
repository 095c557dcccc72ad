"""Picture formats: 8- and 16-bit PNG, TIFF and JPEG (Pillow; pypng for 16-bit PNG), greyscale
or colour.

Every image becomes one (H, W) frame of ``uint16`` counts. 8-bit samples are scaled by 257
(255 -> 65535), so the rest of the pipeline always sees 0..65535; 16-bit samples are kept as
stored; 32-bit integer and float TIFFs must hold values in 0..65535 (rounded). An alpha
channel is dropped. A colour image gives one channel, chosen by ``channel``:

- ``"auto"`` (default): the one channel that carries data when only one does (OATH stores its
  THEMIS frames in the green channel of an RGB PNG), else the luminance;
- ``"red"``, ``"green"``, ``"blue"``: that channel;
- ``"luminance"``: ITU-R BT.601 luma, ``0.299 R + 0.587 G + 0.114 B`` (Pillow's ``"L"``
  conversion), computed in floating point on the samples at their own bit depth and only
  then scaled and rounded to 16-bit counts, so no precision is lost to an 8-bit step.

Greyscale images have nothing to choose: ``channel`` does not apply to them.

Bounds before allocation: a PNG's layout is checked before it is decoded and its image data
is inflated no further than its header declares (:func:`_check_png`); a TIFF or JPEG header
is read lazily by ``Image.open`` and its size checked before ``load()``. Refused (415):
1/2/4-bit and palette images, CMYK and other colour spaces, 16-bit colour TIFF (Pillow
would read only its top 8 bits).
"""

from __future__ import annotations

import io
import itertools
import struct
import warnings
import zlib

import numpy as np
import png
from PIL import Image, UnidentifiedImageError

from arcscan.errors import InputError, InputTooLarge, UnsupportedFormat
from arcscan.io.base import EIGHT_BIT_SCALE, Frame, Limits, check_size, counts, eight_bit_counts

COLOURS = ("red", "green", "blue")
CHANNELS = ("auto", *COLOURS, "luminance")
_BT601 = np.array([0.299, 0.587, 0.114], np.float32)
_PNG_PLANES = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (grey, RGB, grey+alpha, RGBA)
_PNG_PALETTE = 3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*")  # little- and big-endian classic TIFF (not BigTIFF)
JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_PIXEL_CHUNKS = {b"IHDR", b"IDAT", b"IEND"}  # palette PNGs are refused: no PLTE
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))  # x0, y0, dx, dy
_PILLOW_DIRECT = {"L", "LA", "RGB", "RGBA", "RGBX"}  # 8 bits per sample
_PILLOW_GREY16 = {"I;16", "I;16L", "I;16B", "I;16N"}
_PILLOW_WIDE = {"I", "F"}  # 32-bit integer or float samples
_TIFF_BITS_PER_SAMPLE = 258
# A progressive JPEG is decoded once per scan: libjpeg leaves the bound to the application
# (djpeg's -maxscans). Ten or so is usual; a marker count over-counts (embedded thumbnails).
_MAX_JPEG_SCANS = 100
# What Pillow raises on malformed files, besides its own errors (OSError and subclasses).
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError, ZeroDivisionError)


def check_channel(channel: str, name: str) -> None:
    """Refuse (400) a ``channel`` that is not one of :data:`CHANNELS`."""
    if channel not in CHANNELS:
        raise InputError(f"{name}: unknown channel {channel!r}, expected one of {', '.join(CHANNELS)}")


def to_counts(samples: np.ndarray, bits: int, channel: str) -> np.ndarray:
    """(H, W) grey, (H, W, 2) grey + alpha or (H, W, 3|4) colour (+ alpha) samples of ``bits``
    (8 or 16) as one (H, W) ``uint16`` frame; ``channel`` as in the module docstring."""
    scale = EIGHT_BIT_SCALE if bits == 8 else 1
    if samples.ndim == 3 and samples.shape[2] >= 3:
        rgb = samples[..., :3]
        if channel == "auto":
            carrying = [c for c in range(3) if rgb[..., c].any()]
            channel = COLOURS[carrying[0]] if len(carrying) == 1 else "luminance"
        if channel == "luminance":
            luma = (rgb.astype(np.float32) @ _BT601) * np.float32(scale)
            return np.clip(np.rint(luma), 0, 65535).astype(np.uint16)
        grey = rgb[..., COLOURS.index(channel)]
    else:
        grey = samples[..., 0] if samples.ndim == 3 else samples
    return eight_bit_counts(grey) if bits == 8 else grey.astype(np.uint16)


# --------------------------------------------------------------------------------------------
# PNG (a layout check, then Pillow or pypng)


def read_png(data: bytes, name: str, limits: Limits, channel: str = "auto") -> list[Frame]:
    """An 8- or 16-bit PNG: greyscale, grey + alpha, RGB or RGBA. 8-bit: Pillow (fast, but
    it reads 16-bit colour only to 8 bits); 16-bit: pypng."""
    try:
        bitdepth = _check_png(data, name, limits)
        if bitdepth == 8:
            return _read_pillow(_pixel_chunks(data), name, limits, channel, "PNG")
        width, height, rows, info = png.Reader(bytes=data).read()
        pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except (png.Error, zlib.error) as err:
        raise InputError(f"{name}: corrupt PNG ({err})") from err
    samples = pixels.reshape(height, width, info["planes"])
    return [Frame(np.ascontiguousarray(to_counts(samples, bitdepth, channel)), {}, name, 0)]


def _check_png(data: bytes, name: str, limits: Limits) -> int:
    """Check a PNG's layout before pypng decodes it, and return its bit depth: pypng trusts
    the layout (misplaced or short chunks fail with AttributeError or IndexError) and inflates
    the image data with no bound.

    The first chunk must be an 8- or 16-bit IHDR within ``limits``, the only one; the image
    data (IDAT chunks) must inflate to exactly the size the header declares, and is inflated
    no further than that.
    """
    chunks = png.Reader(bytes=data).chunks()
    kind, header = next(chunks)
    if kind != b"IHDR" or len(header) != 13:
        raise InputError(f"{name}: corrupt PNG (first chunk {kind!r} of {len(header)} bytes, expected IHDR)")
    width, height, bitdepth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", header)
    check_size(name, width, height, limits)
    if colour == _PNG_PALETTE:
        raise UnsupportedFormat(f"{name}: palette (indexed-colour) PNG, its values are colour-table indices, not intensities; expected greyscale or RGB")
    if bitdepth not in (8, 16):
        raise UnsupportedFormat(f"{name}: {bitdepth}-bit PNG, expected 8- or 16-bit")
    if colour not in _PNG_PLANES or compression or filtering or interlace > 1:
        raise InputError(
            f"{name}: corrupt PNG (colour type {colour}, compression {compression}, filter {filtering}, interlace {interlace})"
        )
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    pixel_bytes = bitdepth // 8 * _PNG_PLANES[colour]
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
    return bitdepth


def _pixel_chunks(data: bytes) -> bytes:
    """A checked PNG with only the chunks that carry its pixels: Pillow would inflate text and
    ICC profile chunks (up to 64 MiB in all) that arcscan never reads."""
    kept = [
        struct.pack(">I", len(chunk)) + kind + chunk + struct.pack(">I", zlib.crc32(kind + chunk))
        for kind, chunk in png.Reader(bytes=data).chunks()
        if kind in _PNG_PIXEL_CHUNKS
    ]
    return PNG_SIGNATURE + b"".join(kept)


# --------------------------------------------------------------------------------------------
# TIFF and JPEG (Pillow)


def read_tiff(data: bytes, name: str, limits: Limits, channel: str = "auto") -> list[Frame]:
    """A TIFF: every page (image file directory) a frame, up to ``limits.max_frames``."""
    return _read_pillow(data, name, limits, channel, "TIFF")


def read_jpeg(data: bytes, name: str, limits: Limits, channel: str = "auto") -> list[Frame]:
    """A JPEG (8-bit greyscale or colour): one frame."""
    scans = data.count(b"\xff\xda")  # start-of-scan markers
    if scans > _MAX_JPEG_SCANS:
        raise InputTooLarge(f"{name}: JPEG with {scans} scans, more than {_MAX_JPEG_SCANS} (limit)")
    return _read_pillow(data, name, limits, channel, "JPEG")


def _read_pillow(data: bytes, name: str, limits: Limits, channel: str, kind: str) -> list[Frame]:
    """The frames (TIFF pages; one for PNG and JPEG) Pillow decodes as ``kind``, each frame's
    size checked from its header before its pixels are decoded."""
    frames: list[Frame] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data" and the like: metadata arcscan does not read
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # refused, not logged
        try:
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                for index in itertools.count() if kind == "TIFF" else (0,):
                    try:
                        image.seek(index)
                    except EOFError:
                        break
                    where = name if index == 0 else f"{name}: frame {index}"
                    if index == limits.max_frames:
                        raise InputTooLarge(f"{name}: more than {limits.max_frames} frames (limit)")
                    check_size(where, *image.size, limits)  # before load(): the header only so far
                    samples, bits = _pillow_samples(image, where, kind)
                    frames.append(Frame(np.ascontiguousarray(to_counts(samples, bits, channel)), {}, name, index))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise InputTooLarge(f"{name}: {kind} image over the limit of {limits.max_side} pixels per side ({err})") from err
        except UnidentifiedImageError as err:  # its message shows the BytesIO object
            raise InputError(f"{name}: corrupt {kind} (not an image Pillow can read)") from err
        except _PILLOW_ERRORS as err:
            raise InputError(f"{name}: corrupt {kind} ({err})") from err
    return frames


def _pillow_samples(image: Image.Image, where: str, kind: str) -> tuple[np.ndarray, int]:
    """The decoded samples of Pillow's current frame and their bit depth (8 or 16)."""
    mode = image.mode
    if mode == "1":
        raise UnsupportedFormat(f"{where}: 1-bit (bilevel) {kind}, expected 8- or 16-bit")
    if mode in ("P", "PA"):
        raise UnsupportedFormat(f"{where}: palette (indexed-colour) {kind}, its values are colour-table indices, not intensities")
    if mode in _PILLOW_DIRECT:
        bits = image.tag_v2.get(_TIFF_BITS_PER_SAMPLE, 8) if kind == "TIFF" else 8
        bits = bits if isinstance(bits, tuple) else (bits,)
        if max(bits, default=8) > 8:
            raise UnsupportedFormat(f"{where}: {max(bits)}-bit colour TIFF, which Pillow reads only to 8 bits; save one channel as a greyscale TIFF or the image as a 16-bit PNG")
        return np.asarray(image), 8
    if mode in _PILLOW_GREY16:
        return np.asarray(image).astype(np.uint16), 16
    if mode in _PILLOW_WIDE:
        return counts(np.asarray(image), where), 16
    raise UnsupportedFormat(f"{where}: {mode} {kind} is not supported, expected greyscale or RGB")
