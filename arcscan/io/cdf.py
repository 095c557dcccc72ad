"""THEMIS level-1 all-sky imager files in NASA CDF (``thg_l1_asf_<site>_<YYYYMMDDHH>_v01.cdf``),
decoded with ``cdflib`` after the file's structure has been checked within limits.

The frames are the records of the zVariable ``thg_asf_<site>`` (N x H x W ``CDF_UINT2``
counts, 256 x 256 for THEMIS), their times those of ``thg_asf_<site>_epoch`` (``CDF_EPOCH``,
the exposure start); the site comes from the variable's name. Frames are returned as stored
(the orientation of the skymaps; raw stream0 may be flipped relative to them).

cdflib trusts a file's structure: its loops run as many times as a record says, its reads are
as long as a record says and it inflates compressed records with no bound. So before cdflib
sees a file, :func:`_check_cdf` walks what cdflib will read (the descriptor records, the
variable chains, the two variables' index trees and every data block) with bounds on counts,
sizes and offsets, and inflates each compressed block no further than the records it holds.
cdflib reads files by path only, so the checked bytes go to a temporary file.

Not read (415): CDF version 2 files, whole-file compression, multi-file CDFs, other data
types than ``CDF_UINT2`` images and ``CDF_EPOCH`` times, sparse records.
"""

from __future__ import annotations

import re
import struct
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from arcscan.errors import InputError, InputTooLarge, UnsupportedFormat
from arcscan.io.base import SITE_KEY, TIMESTAMP_KEY, Frame, Limits, check_count, check_size, format_timestamp

MAGIC_V3, MAGIC_V2 = b"\xcd\xf3\x00\x01", b"\xcd\xf2\x60\x02"
_UNCOMPRESSED = b"\x00\x00\xff\xff"
_IMAGE_VARIABLE = re.compile(r"thg_asf_([a-z0-9]+)")
_CDR, _GDR, _RVDR, _VXR, _VVR, _ZVDR, _CPR, _CVVR = 1, 2, 3, 6, 7, 8, 11, 13  # internal record types
_CDF_UINT2, _CDF_EPOCH, _GZIP = 12, 31, 5
_UNSUPPORTED_ENCODINGS = (3, 14, 15)  # VAX, ALPHAVMSg, ALPHAVMSi: cdflib refuses them
_RECORD_VARIES, _COMPRESSED = 1, 4  # VDR flag bits
_MAX_VARIABLES = 64  # per chain (a THEMIS L1 file has 8 zVariables)
_MAX_DIMS = 10  # the CDF library's own limit
_MAX_INDEX_RECORDS = 64  # VXRs per variable (a THEMIS L1 image variable has one)
_EPOCH_1970 = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_1970_MS = 62_167_219_200_000.0  # CDF_EPOCH: milliseconds since 0000-01-01T00:00 (proleptic Gregorian)
_EPOCH_2100_MS = _EPOCH_1970_MS + 4_102_444_800_000.0
# What cdflib raises on a file it cannot make sense of.
_CDFLIB_ERRORS = (OSError, ValueError, RuntimeError, KeyError, IndexError, TypeError, struct.error)


@dataclass(frozen=True)
class _Variable:
    """The fields of a variable descriptor record (VDR) that cdflib acts on."""

    name: str
    offset: int
    size: int
    data_type: int
    max_rec: int
    vxr_head: int
    flags: int
    sparse: int
    elements: int
    cpr: int
    dims: tuple[int, ...]
    varys: tuple[int, ...]


def read_cdf(data: bytes, name: str, limits: Limits) -> list[Frame]:
    """The frames of a THEMIS level-1 ``asf`` CDF file (see the module docstring)."""
    variable, site = _check_cdf(data, name, limits)
    import cdflib  # on first use

    with tempfile.NamedTemporaryFile(suffix=".cdf") as handle:
        handle.write(data)
        handle.flush()
        try:
            cdf = cdflib.CDF(handle.name)
            images, epochs = cdf.varget(variable), cdf.varget(f"{variable}_epoch")
        except _CDFLIB_ERRORS as err:
            raise InputError(f"{name}: corrupt CDF ({err})") from err
        finally:
            cdf = None  # cdflib has no close(): it closes its file handle when the object goes
    images, epochs = np.asarray(images), np.asarray(epochs, dtype=np.float64).reshape(-1)
    if images.ndim == 2:  # cdflib drops the record axis of a one-record variable
        images = images[np.newaxis]
    if images.ndim != 3 or images.dtype.kind != "u" or images.dtype.itemsize != 2 or len(epochs) != len(images):
        raise InputError(f"{name}: corrupt CDF ({variable} decoded as {images.dtype} {images.shape} with {len(epochs)} times)")
    images = images.astype(np.uint16, copy=False)  # native byte order
    if not (np.isfinite(epochs) & (epochs >= _EPOCH_1970_MS) & (epochs < _EPOCH_2100_MS)).all():
        raise InputError(f"{name}: {variable}_epoch holds times outside 1970..2100")
    frames = []
    for index, (image, epoch) in enumerate(zip(images, epochs)):
        moment = _EPOCH_1970 + timedelta(milliseconds=float(epoch) - _EPOCH_1970_MS)
        metadata = {TIMESTAMP_KEY: format_timestamp(moment), SITE_KEY: site}
        frames.append(Frame(np.ascontiguousarray(image), metadata, name, index))
    return frames


def _check_cdf(data: bytes, name: str, limits: Limits) -> tuple[str, str]:
    """Walk what cdflib will read, within bounds; return the image variable's name and site."""
    if data[:4] == MAGIC_V2:
        raise UnsupportedFormat(f"{name}: CDF version 2 file, expected version 3 (THEMIS level-1)")
    if data[4:8] != _UNCOMPRESSED:
        raise UnsupportedFormat(f"{name}: whole-file compressed CDF, expected per-variable compression (THEMIS level-1)")
    walk = _Walk(data, name)
    cdr_size = walk.record(8, _CDR, "descriptor record")
    version, _, encoding, flags = walk.unpack("iiii", 28, "descriptor record")
    if version != 3 or encoding in _UNSUPPORTED_ENCODINGS or not flags & 2:
        raise UnsupportedFormat(f"{name}: CDF version {version}, encoding {encoding}, flags {flags:#x}: expected a single-file version 3 CDF")
    gdr = 8 + cdr_size  # where cdflib looks for it: right after the descriptor record
    gdr_size = walk.record(gdr, _GDR, "global descriptor record")
    rvdr_head, zvdr_head = walk.unpack("qq", gdr + 12, "global descriptor record")
    (r_count,) = walk.unpack("i", gdr + 44, "global descriptor record")
    r_dims, z_count = walk.unpack("ii", gdr + 56, "global descriptor record")
    if not (0 <= r_count <= _MAX_VARIABLES and 0 <= z_count <= _MAX_VARIABLES and 0 <= r_dims <= _MAX_DIMS) or gdr_size < 84 + 4 * r_dims:
        raise InputError(f"{name}: corrupt CDF ({z_count} zVariables, {r_count} rVariables, {r_dims} rDimensions)")
    variables = walk.chain(zvdr_head, z_count, _ZVDR)
    names = [variable.name.lower() for variable in variables + walk.chain(rvdr_head, r_count, _RVDR)]
    if len(set(names)) != len(names):
        raise InputError(f"{name}: corrupt CDF (variable names repeat)")
    found = [v for v in variables if _IMAGE_VARIABLE.fullmatch(v.name.lower())]
    if len(found) != 1:
        raise UnsupportedFormat(f"{name}: CDF with {len(found)} THEMIS image variables thg_asf_<site>, expected one")
    (image,) = found
    by_name = {v.name.lower(): v for v in variables}
    epoch = by_name.get(f"{image.name.lower()}_epoch")
    if epoch is None:
        raise InputError(f"{name}: CDF has no {image.name}_epoch variable (the frame times)")
    if image.data_type != _CDF_UINT2 or epoch.data_type != _CDF_EPOCH:
        raise UnsupportedFormat(f"{name}: CDF data types {image.data_type} ({image.name}) and {epoch.data_type} (its epoch), expected {_CDF_UINT2} (CDF_UINT2) and {_CDF_EPOCH} (CDF_EPOCH)")
    if len(image.dims) != 2 or not all(image.varys) or epoch.dims:
        raise InputError(f"{name}: {image.name} has dimensions {list(image.dims)}, expected (N, H, W) images with one time each")
    for variable in (image, epoch):
        if variable.sparse or variable.elements != 1 or not variable.flags & _RECORD_VARIES:
            raise UnsupportedFormat(f"{name}: {variable.name} has sparse records, {variable.elements} elements or no record variance")
    if epoch.max_rec != image.max_rec:
        raise InputError(f"{name}: {epoch.max_rec + 1} times for {image.max_rec + 1} frames")
    height, width = image.dims
    check_size(name, width, height, limits)
    check_count(name, image.max_rec + 1, limits)
    inflated = walk.blocks(image, 2 * width * height) + walk.blocks(epoch, 8)
    if inflated > limits.max_decompressed_bytes:
        raise InputTooLarge(f"{name}: decompresses to more than {limits.max_decompressed_bytes} bytes (limit)")
    return image.name, _IMAGE_VARIABLE.fullmatch(image.name.lower()).group(1)


class _Walk:
    """Bounded reads of a CDF's internal records (big-endian, 8-byte offsets: version 3)."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name = data, name

    def corrupt(self, what: str) -> InputError:
        return InputError(f"{self.name}: corrupt CDF ({what})")

    def unpack(self, fmt: str, offset: int, what: str) -> tuple:
        if not 0 <= offset <= len(self.data) - struct.calcsize(">" + fmt):
            raise self.corrupt(f"{what} at byte {offset} is outside the file of {len(self.data)} bytes")
        return struct.unpack_from(">" + fmt, self.data, offset)

    def record(self, offset: int, kind: int, what: str) -> int:
        """The size of the internal record of type ``kind`` at ``offset``, wholly in the file."""
        size, found = self.unpack("qi", offset, what)
        if found != kind or not 12 <= size <= len(self.data) - offset:
            raise self.corrupt(f"{what} at byte {offset}: type {found} of {size} bytes, expected type {kind} within the file")
        return size

    def chain(self, head: int, count: int, kind: int) -> list[_Variable]:
        """The ``count`` variable descriptors of a chain, as cdflib follows it (by count)."""
        variables, seen, offset = [], set(), head
        for _ in range(count):
            if offset in seen:
                raise self.corrupt(f"the variable chain loops back to byte {offset}")
            seen.add(offset)
            variables.append(self.variable(offset, kind))
            (offset,) = self.unpack("q", offset + 12, "variable descriptor")
        return variables

    def variable(self, offset: int, kind: int) -> _Variable:
        size = self.record(offset, kind, "variable descriptor")
        data_type, max_rec, vxr_head = self.unpack("iiq", offset + 20, "variable descriptor")
        flags, sparse = self.unpack("ii", offset + 44, "variable descriptor")
        elements, _, cpr = self.unpack("iiq", offset + 64, "variable descriptor")
        try:
            name = self.unpack("256s", offset + 84, "variable descriptor")[0].decode("ascii").replace("\x00", "").strip()
        except UnicodeDecodeError as err:
            raise self.corrupt(f"a variable name is not ASCII ({err})") from err
        dims = varys = ()
        if kind == _ZVDR:
            (count,) = self.unpack("i", offset + 340, "variable descriptor")
            if not 0 <= count <= _MAX_DIMS or size < 344 + 8 * count:
                raise self.corrupt(f"{name}: {count} dimensions in a descriptor of {size} bytes")
            dims = self.unpack(f"{count}i", offset + 344, "variable descriptor")
            varys = self.unpack(f"{count}i", offset + 344 + 4 * count, "variable descriptor")
        return _Variable(name, offset, size, data_type, max_rec, vxr_head, flags, sparse, elements, cpr, dims, varys)

    def blocks(self, variable: _Variable, record_bytes: int) -> int:
        """Check a variable's index tree and data blocks (records 0..max_rec, in order, each
        block exactly its records' size once inflated); return the bytes inflated."""
        if variable.flags & _COMPRESSED:
            self.record(variable.cpr, _CPR, f"{variable.name}: compression parameters")
            (kind,) = self.unpack("i", variable.cpr + 12, "compression parameters")
            if kind != _GZIP:
                raise UnsupportedFormat(f"{self.name}: {variable.name} uses CDF compression type {kind}, expected GZIP ({_GZIP})")
        leaves: list[tuple[int, int, int]] = []
        self._index(variable.vxr_head, leaves, set(), variable.max_rec + 1)
        expected_first, inflated = 0, 0
        for first, last, offset in leaves:
            if first != expected_first or last < first or last > variable.max_rec:
                raise self.corrupt(f"{variable.name}: a data block holds records {first}..{last}, expected from record {expected_first} to at most {variable.max_rec}")
            expected_first = last + 1
            inflated += self._block(offset, (last - first + 1) * record_bytes, variable.name)
        if expected_first != variable.max_rec + 1:
            raise self.corrupt(f"{variable.name}: data blocks hold {expected_first} of {variable.max_rec + 1} records")
        return inflated

    def _index(self, offset: int, leaves: list[tuple[int, int, int]], seen: set[int], records: int) -> None:
        """Collect the data blocks under a variable index record (VXR) and its successors, in
        cdflib's order (depth first, entries before the next VXR); each entry holds at least
        one of the variable's ``records``, which bounds the entries."""
        while offset:
            if offset in seen or len(seen) == _MAX_INDEX_RECORDS:
                raise self.corrupt(f"the index records loop or exceed {_MAX_INDEX_RECORDS}")
            seen.add(offset)
            size = self.record(offset, _VXR, "index record")
            following, entries, used = self.unpack("qii", offset + 12, "index record")
            if not 0 <= used <= min(entries, records - len(leaves)) or size < 28 + 16 * entries:
                raise self.corrupt(f"index record at byte {offset}: {used} of {entries} entries in {size} bytes")
            firsts = self.unpack(f"{used}i", offset + 28, "index record")
            lasts = self.unpack(f"{used}i", offset + 28 + 4 * entries, "index record")
            offsets = self.unpack(f"{used}q", offset + 28 + 8 * entries, "index record")
            for first, last, child in zip(firsts, lasts, offsets):
                (kind,) = self.unpack("i", child + 8, "data block")
                if kind == _VXR:
                    self._index(child, leaves, seen, records)
                elif len(leaves) == records:
                    raise self.corrupt(f"more data blocks than the {records} records")
                else:
                    leaves.append((first, last, child))
            offset = following

    def _block(self, offset: int, expected: int, variable: str) -> int:
        """Check one data block (VVR, or gzip-compressed CVVR inflated at most ``expected``
        bytes); return the bytes inflated."""
        (kind,) = self.unpack("i", offset + 8, "data block")
        if kind == _VVR:
            size = self.record(offset, _VVR, "data block")
            if size - 12 != expected:
                raise self.corrupt(f"{variable}: a data block of {size - 12} bytes, its records need {expected}")
            return 0
        size = self.record(offset, _CVVR, "data block")
        (packed,) = self.unpack("q", offset + 16, "compressed data block")
        if not 0 <= packed <= size - 24:
            raise self.corrupt(f"{variable}: {packed} compressed bytes in a block of {size}")
        inflate = zlib.decompressobj(wbits=31)  # a gzip member, as cdflib's gzip.decompress reads it
        try:
            out = inflate.decompress(self.data[offset + 24 : offset + 24 + packed], expected + 1)
        except zlib.error as err:
            raise self.corrupt(f"{variable}: a compressed block does not inflate ({err})") from err
        if len(out) > expected:
            raise self.corrupt(f"{variable}: a compressed block inflates to more than the {expected} bytes its records need")
        if len(out) < expected or not inflate.eof or inflate.unused_data:
            raise self.corrupt(f"{variable}: a compressed block is not one whole gzip member of {expected} bytes (its records)")
        return expected
