"""FITS frames (Poker Flat DASC and other imagers): the primary HDU's image, read with
``astropy.io.fits`` after its header has been bounded and its declared size checked.

- **Shape**: ``NAXIS = 2`` is one frame (NAXIS2 rows of NAXIS1 pixels), ``NAXIS = 3`` a stack
  of NAXIS3 frames (each with the header's metadata); returned as stored (row 0 is the file's first row, which FITS viewers
  draw at the bottom). Images in extension HDUs are not read.
- **Samples**: ``BITPIX = 16`` without ``BZERO`` holds signed 16-bit words. The DASC cameras'
  converters are unsigned 16-bit and the DASC files set no ``BZERO``, so a negative value can
  only be a count over 32767 that wrapped: it is read back as value + 65536 (the same 16 bits,
  unsigned). With ``BZERO = 32768`` (the FITS convention for unsigned data) astropy gives the
  unsigned counts itself. ``BITPIX = 8``: scaled by 257 (255 -> 65535). Anything else (32- or
  64-bit integers, floats, other ``BSCALE``/``BZERO`` scalings) must be finite and within
  0..65535, and is rounded.
- **Metadata**: every header card (but COMMENT, HISTORY and the structural ones) as text;
  the exposure start from ``DATE-OBS`` (with ``TIME-OBS`` when it holds only the date), else
  ``OBSDATE`` + ``OBSSTART`` (what DASC headers hold), else the DASC file name
  ``PKR_DASC_<nm x 10>_<YYYYMMDD>_<HHMMSS.fff>.FITS`` in the ``FNAME`` card or the input's
  name; the site from ``SITE`` or ``OBSERVAT``, the imager from ``INSTRUME``, else both from
  that file name; in lower case (``pkr``, ``dasc``) as THEMIS names its sites.
"""

from __future__ import annotations

import io
import re
import warnings
from datetime import datetime, timezone

import numpy as np

from arcscan.errors import InputError, InputTooLarge, UnsupportedFormat
from arcscan.io.base import IMAGER_KEY, SITE_KEY, TIMESTAMP_KEY, Frame, Limits, check_count, check_size, counts, eight_bit_counts, format_timestamp

MAGIC = b"SIMPLE  ="
_CARD, _BLOCK = 80, 2880
_BITPIX = {8, 16, 32, 64, -32, -64}
_STRUCTURAL = re.compile(r"SIMPLE|BITPIX|NAXIS\d*|EXTEND|END|COMMENT|HISTORY|")
_DASC_NAME = re.compile(r"(?P<site>[A-Za-z0-9]+)_(?P<imager>[A-Za-z]+)_\d{4}_(?P<date>\d{8})_(?P<time>\d{6}(?:\.\d{1,6})?)")


def read_fits(data: bytes, name: str, limits: Limits) -> list[Frame]:
    """The frames of a FITS file's primary HDU (see the module docstring)."""
    from astropy.io import fits  # on first use: astropy takes most of a second to import
    from astropy.utils.exceptions import AstropyUserWarning

    data_start = _header_size(data, name, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)  # header repairs: the checks below decide
            with fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True) as hdus:
                primary = hdus[0]
                if not isinstance(primary, fits.PrimaryHDU):  # astropy's stand-in for a header it cannot use
                    raise InputError(f"{name}: corrupt FITS (unreadable primary header)")
                header = primary.header
                shape, bitpix = _check_header(header, name, limits)
                needed = data_start + abs(bitpix) // 8 * int(np.prod(shape))
                if len(data) < needed:
                    raise InputError(f"{name}: truncated FITS data ({len(data) - data_start} of {needed - data_start} bytes)")
                array = np.asarray(primary.data)  # read into memory (memmap=False): valid after close
                cards = {key: str(value) for key, value in header.items() if not _STRUCTURAL.fullmatch(key)}
    except (OSError, ValueError, KeyError, TypeError, IndexError, fits.VerifyError) as err:
        raise InputError(f"{name}: corrupt FITS ({err})") from err
    stack = _samples(array.reshape((-1, *array.shape[-2:])), name)
    metadata = {**cards, **_provenance(header, name)}
    return [Frame(image, metadata, name, i) for i, image in enumerate(stack)]


def _header_size(data: bytes, name: str, limits: Limits) -> int:
    """Where the primary header ends (whole 2880-byte blocks), found within
    ``limits.max_metadata`` cards, so that astropy parses a bounded header."""
    for index in range(limits.max_metadata + 1):
        card = data[index * _CARD : (index + 1) * _CARD]
        if len(card) < _CARD:
            raise InputError(f"{name}: truncated FITS header (no END card in its {len(data)} bytes)")
        if card.startswith(b"END") and not card[3:].strip():
            return -(-(index + 1) * _CARD // _BLOCK) * _BLOCK
    raise InputTooLarge(f"{name}: FITS header of more than {limits.max_metadata} cards (limit)")


def _check_header(header, name: str, limits: Limits) -> tuple[tuple[int, ...], int]:
    """The data's shape (N, H, W) or (H, W) and BITPIX, checked before the data is read."""
    naxis, bitpix = header.get("NAXIS"), header.get("BITPIX")
    if bitpix not in _BITPIX or not isinstance(bitpix, int):
        raise InputError(f"{name}: corrupt FITS (BITPIX {bitpix!r}, expected one of {sorted(_BITPIX)})")
    if naxis == 0:
        raise UnsupportedFormat(f"{name}: no image in the FITS primary HDU (NAXIS = 0; extensions are not read)")
    if naxis not in (2, 3) or not isinstance(naxis, int):
        raise InputError(f"{name}: FITS NAXIS = {naxis!r}, expected a 2-D image or an (N, H, W) stack")
    sizes = [header.get(f"NAXIS{axis}") for axis in range(1, naxis + 1)]
    if not all(isinstance(size, int) and not isinstance(size, bool) for size in sizes):
        raise InputError(f"{name}: corrupt FITS (axis sizes {sizes!r})")
    width, height, *count = sizes
    check_size(name, width, height, limits)
    check_count(name, count[0] if count else 1, limits)
    return (*count[::-1], height, width), bitpix


def _samples(array: np.ndarray, name: str) -> np.ndarray:
    """FITS samples as uint16 counts (see the module docstring)."""
    if array.dtype.kind == "i" and array.dtype.itemsize == 2:
        return array.astype(np.int16).view(np.uint16)  # wrapped unsigned counts come back
    if array.dtype.kind == "u" and array.dtype.itemsize == 1:
        return eight_bit_counts(array)
    return counts(array, name)


def _provenance(header, name: str) -> dict[str, str]:
    """Exposure start, site and imager from the header, else from a DASC file name."""
    named = _DASC_NAME.match(str(header.get("FNAME", ""))) or _DASC_NAME.match(name)
    site = str(header.get("SITE", "") or header.get("OBSERVAT", "") or (named["site"] if named else "")).strip()
    imager = str(header.get("INSTRUME", "") or (named["imager"] if named else "")).strip()
    moment = _exposure_start(header, named, name)
    found = {TIMESTAMP_KEY: format_timestamp(moment) if moment else "", SITE_KEY: site.lower(), IMAGER_KEY: imager.lower()}
    return {key: value for key, value in found.items() if value}


def _exposure_start(header, named: re.Match | None, name: str) -> datetime | None:
    date = str(header.get("DATE-OBS", "")).strip()
    if date and "T" not in date:  # a date alone: the time of day may be in TIME-OBS
        clock = str(header.get("TIME-OBS", "")).strip()
        date = f"{date}T{clock}" if clock else ""
    if not date and header.get("OBSDATE") and header.get("OBSSTART"):
        date = f"{str(header['OBSDATE']).strip()}T{str(header['OBSSTART']).strip()}"
    try:
        if date:
            moment = datetime.fromisoformat(date)
        elif named:
            moment = datetime.strptime(named["date"] + named["time"], "%Y%m%d%H%M%S.%f" if "." in named["time"] else "%Y%m%d%H%M%S")
        else:
            return None
    except ValueError as err:
        raise InputError(f"{name}: unreadable FITS exposure time {date[:40]!r}") from err
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
