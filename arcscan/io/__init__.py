"""Frames in and out: decoding untrusted bytes within limits (stream0, CDF, FITS, PNG, TIFF,
JPEG, ``.npy``; one module a format, :mod:`arcscan.io.frames` the entry point), writing stream0."""
