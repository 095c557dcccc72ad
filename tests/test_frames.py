"""Frame readers and writers: real THEMIS stream0 files, round trips, and malformed input."""

import gzip
import io
from datetime import datetime, timedelta, timezone

import numpy as np
import png
import pytest

from arcscan.errors import InputError, InputTooLarge, UnsupportedFormat
from arcscan.frames import Frame, Limits, decode_frames, encode_stream0, format_timestamp, read_frames, stream0_name, write_stream0


def test_real_gillam_files_give_120_frames_with_timestamps(gillam_files):
    frames = [frame for path in gillam_files for frame in read_frames(path)]
    assert len(gillam_files) == 6 and len(frames) == 120
    assert all(f.image.shape == (256, 256) and f.image.dtype == np.uint16 for f in frames)
    assert {f.site for f in frames} == {"gill"} and {f.imager for f in frames} == {"themis19"}
    stamps = [f.timestamp for f in frames]
    assert stamps[0] == datetime(2014, 3, 10, 6, 0, 0, 63119, tzinfo=timezone.utc)
    gaps = np.diff([s.timestamp() for s in stamps])
    assert np.all((gaps > 2.5) & (gaps < 3.5))  # 3 s cadence, across file boundaries too
    # later frames carry only changed metadata; the reader keeps the running union
    assert all(f.ccd_background == 3300 for f in frames)
    # corners are dark (CCD background), the sky disc is brighter
    image = frames[0].image.astype(float)
    assert np.median(image[:10, :10]) < np.median(image[100:156, 100:156])


def test_real_gzip_and_plain_files_agree_with_themselves(gillam_files):
    plain = [p for p in gillam_files if p.suffix == ".pgm"][0]
    frames = read_frames(plain)
    again = decode_frames(gzip.compress(plain.read_bytes()), "x.pgm.gz")
    assert all(np.array_equal(a.image, b.image) and a.metadata == b.metadata for a, b in zip(frames, again))


def test_real_oath_png_reads_the_green_channel(oath_frame):
    (frame,) = read_frames(oath_frame)
    assert frame.image.shape == (256, 256) and frame.image.dtype == np.uint16 and frame.image.max() > 30000


def _minute(n=3, shape=(256, 256), seed=0):
    rng = np.random.default_rng(seed)
    start = datetime(2020, 1, 2, 3, 4, 0, 500, tzinfo=timezone.utc)
    return [
        Frame(
            rng.integers(0, 65536, shape, dtype=np.uint16),
            {"Site unique ID": "test", "Imager unique ID": "themis00", "Image request start": format_timestamp(start + timedelta(seconds=3 * i)), "Ccd background": "3300"},
            "x",
            i,
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("name", ["m.pgm", "m.pgm.gz"])
def test_write_read_round_trip(tmp_path, name):
    frames = _minute()
    path = write_stream0(tmp_path / name, frames)
    back = read_frames(path)
    assert len(back) == 3
    for a, b in zip(frames, back):
        assert np.array_equal(a.image, b.image) and a.metadata == b.metadata and a.timestamp == b.timestamp
    assert back[1].timestamp - back[0].timestamp == timedelta(seconds=3)


def test_gzip_output_is_reproducible(tmp_path):
    a = write_stream0(tmp_path / "a.pgm.gz", _minute()).read_bytes()
    b = write_stream0(tmp_path / "b.pgm.gz", _minute()).read_bytes()
    assert a == b


def test_stream0_name():
    moment = datetime(2014, 3, 10, 6, 2, 33, tzinfo=timezone.utc)
    assert stream0_name(moment, "gill", "themis19") == "20140310_0602_gill_themis19_full.pgm.gz"


def test_png_and_npy_inputs():
    image = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 7
    buffer = io.BytesIO()
    png.Writer(64, 48, greyscale=True, bitdepth=16).write(buffer, image.tolist())
    (frame,) = decode_frames(buffer.getvalue(), "f.png")
    assert np.array_equal(frame.image, image)
    stack = np.stack([image, image + 1]).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, stack)
    frames = decode_frames(buffer.getvalue(), "f.npy")
    assert len(frames) == 2 and np.array_equal(frames[1].image, image + 1)


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _png(array, bitdepth=16) -> bytes:
    buffer = io.BytesIO()
    png.Writer(array.shape[1], array.shape[0], greyscale=True, bitdepth=bitdepth).write(buffer, array.tolist())
    return buffer.getvalue()


GOOD = encode_stream0(_minute(2))
BAD_INPUTS = [
    (b"", InputError, "empty input"),
    (gzip.compress(GOOD)[:-100], InputError, "truncated gzip"),
    (b"\x1f\x8b" + b"\x00" * 50, InputError, "corrupt gzip"),
    (b"hello, world", UnsupportedFormat, "not a recognised frame format"),
    (GOOD[:5000], InputError, "truncated pixel data"),
    (b"P5\n4 4\n255\n" + bytes(16), UnsupportedFormat, "8-bit PGM"),
    (GOOD.replace(b"256 256\n", b"4096 256\n", 1), InputTooLarge, "outside 1..1024"),
    (GOOD.replace(b"256 256\n", b"25x 256\n", 1), InputError, "bad header field"),
    (b"P2\n2 2\n255\n0 0 0 0\n", UnsupportedFormat, "P2 is not supported"),
    (encode_stream0(_minute(21, shape=(8, 8))), InputTooLarge, "more than 20 frames"),
    (gzip.compress(b"P5\n" + b"#" * 9_000_000), InputTooLarge, "decompresses to more than"),
    (_npy(np.full((4, 4), np.nan)), InputError, "NaN"),
    (_npy(np.zeros((4, 4), np.uint8)), UnsupportedFormat, "8-bit"),
    (_npy(np.full((4, 4), 70000.0)), InputError, "outside 0..65535"),
    (_npy(np.zeros((2, 3, 4, 4), np.uint16)), InputError, r"expected \(H, W\)"),
    (_npy(np.zeros((4, 4), np.uint16))[:-8], InputError, "truncated or corrupt"),
    (_png(np.zeros((4, 4), np.uint8), bitdepth=8), UnsupportedFormat, "8-bit PNG"),
    (_png(np.zeros((4, 4), np.uint16))[:40], InputError, "corrupt PNG"),
]


@pytest.mark.parametrize(("data", "error", "message"), BAD_INPUTS, ids=[m for _, _, m in BAD_INPUTS])
def test_bad_input_gets_a_clear_error(data, error, message):
    with pytest.raises(error, match=message):
        decode_frames(data, "upload")


def test_body_over_the_size_limit():
    with pytest.raises(InputTooLarge, match="exceeds the limit"):
        decode_frames(GOOD, "upload", Limits(max_bytes=1000))
