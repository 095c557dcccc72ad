"""``.npy`` arrays of counts, (H, W) or (N, H, W): the header is checked before numpy's parser
is trusted with the data, and the data before it is read."""

from __future__ import annotations

import io
import tokenize

import numpy as np

from arcscan.errors import InputError, UnsupportedFormat
from arcscan.io.base import Frame, Limits, check_count, check_size, counts

# What numpy's .npy header parser (ast.literal_eval, a tokenize pass, np.dtype) raises on a malformed header.
_NPY_HEADER_ERRORS = (ValueError, TypeError, SyntaxError, OverflowError, tokenize.TokenError)
_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def read_npy(data: bytes, name: str, limits: Limits) -> list[Frame]:
    """A ``.npy`` array of counts, (H, W) or (N, H, W); integer (16 bits or more) or float,
    finite, 0..65535. 8-bit arrays are refused: counts or an 8-bit picture, they do not say."""
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
    check_size(name, width, height, limits)
    check_count(name, count, limits)
    values = count * height * width
    offset = stream.tell()
    if len(data) - offset < values * dtype.itemsize:
        raise InputError(f"{name}: truncated .npy data ({len(data) - offset} of {values * dtype.itemsize} bytes)")
    array = np.frombuffer(data, dtype, values, offset).reshape(shape, order="F" if fortran_order else "C")
    stack = counts(array, name).reshape(count, height, width)
    return [Frame(image, {}, name, i) for i, image in enumerate(stack)]
