"""Frames in and out: decoding untrusted bytes within limits, reading files, writing stream0."""
