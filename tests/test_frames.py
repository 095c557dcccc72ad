"""Frame readers and writers: real THEMIS stream0 files, round trips, and the hostile corpus
(``tests/hostile.py``) cases the decoder refuses on its own."""

import gzip
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from arcscan.errors import InputError
from arcscan.io.frames import decode_frames, read_frames, stream0_name, write_stream0
from hostile import CASES, Case, minute, npy, png16


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


@pytest.mark.parametrize("name", ["m.pgm", "m.pgm.gz"])
def test_write_read_round_trip(tmp_path, name):
    frames = minute(3)
    path = write_stream0(tmp_path / name, frames)
    back = read_frames(path)
    assert len(back) == 3
    for a, b in zip(frames, back):
        assert np.array_equal(a.image, b.image) and a.metadata == b.metadata and a.timestamp == b.timestamp
    assert back[1].timestamp - back[0].timestamp == timedelta(seconds=3)


def test_gzip_output_is_reproducible(tmp_path):
    a = write_stream0(tmp_path / "a.pgm.gz", minute(3)).read_bytes()
    b = write_stream0(tmp_path / "b.pgm.gz", minute(3)).read_bytes()
    assert a == b


def test_stream0_name():
    moment = datetime(2014, 3, 10, 6, 2, 33, tzinfo=timezone.utc)
    assert stream0_name(moment, "gill", "themis19") == "20140310_0602_gill_themis19_full.pgm.gz"


def test_png_and_npy_inputs():
    image = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 7
    green = np.stack([0 * image, image, 0 * image], axis=2)  # OATH: the frame in the green channel
    for body in (png16(image), png16(image, interlace=True), png16(np.stack([image, image], axis=2)), png16(green)):
        (frame,) = decode_frames(body, "f.png")
        assert np.array_equal(frame.image, image)
    for dtype in (np.float32, np.int32, ">u2"):
        frames = decode_frames(npy(np.stack([image, image + 1]).astype(dtype)), "f.npy")
        assert len(frames) == 2 and np.array_equal(frames[1].image, image + 1)
    frames = decode_frames(npy(np.asfortranarray(np.stack([image, image + 2]))), "f.npy")
    assert np.array_equal(frames[1].image, image + 2)


DECODER_CASES = [case for case in CASES if case.refused_by == "decoder"]


@pytest.mark.parametrize("case", DECODER_CASES, ids=[case.id for case in DECODER_CASES])
def test_hostile_input_gets_a_clear_error_with_its_status(case: Case):
    with pytest.raises(InputError) as caught:
        decode_frames(case.body(), case.shown)
    assert caught.value.status == case.status
    assert str(caught.value).startswith(f"{case.shown}: ") and case.fragment in str(caught.value)
