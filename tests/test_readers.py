"""Every frame reader (CDF, FITS, PNG, TIFF, JPEG) on the real instrument files in
``../shared/data`` (skipped, with the reason, when that folder is absent) and on synthetic
files written by the formats' own libraries, so that a fresh clone tests the readers too;
colour channel choice; frame sizes; and the memory a decompression bomb may cost."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from arcscan.errors import InputError, InputTooLarge
from arcscan.io.frames import Limits, decode_frames, read_frames
from hostile import MIB, START, _cdf_block_bomb, _jpeg_claiming, _png_chunk, _tiff, _zeros_deflated, cdf_file, fits_file, pillow, png16, raw_png

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
GAKO_CDF = SHARED / "themis_gako_20110106" / "thg_l1_asf_gako_2011010617_v01.cdf"
DASC = SHARED / "dasc_pkr_20151007"
OATH = SHARED / "oath_sample" / "00053.png"
TREX = SHARED / "trex_rgb_gill"
DASC_NAME = re.compile(r"PKR_DASC_(\d{4})_(\d{8}_\d{6}\.\d{3})\.FITS")
UTC = timezone.utc


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real sample not present ({path})")
    return path


def rgb(red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> np.ndarray:
    return np.stack([red, green, blue], axis=2)


# ----------------------------------------------------------------------------- real files


def test_real_themis_cdf_gives_its_23_frames_with_times_and_site():
    path = shared(GAKO_CDF)
    with pytest.raises(InputTooLarge, match=r"^thg_l1_asf_gako_2011010617_v01\.cdf: 23 frames, more than 22 \(limit\)"):
        decode_frames(path.read_bytes(), path.name, Limits(max_frames=22))
    assert len(decode_frames(path.read_bytes(), path.name)) == 23  # a served request may hold it
    frames = read_frames(path)  # a local file may be a whole level-1 hour (FILE_LIMITS)
    assert len(frames) == 23 and [f.index for f in frames] == list(range(23))
    assert all(f.image.shape == (256, 256) and f.image.dtype == np.uint16 for f in frames)
    assert {f.site for f in frames} == {"gako"}
    assert frames[0].timestamp == datetime(2011, 1, 6, 17, 0, 0, 53000, tzinfo=UTC)
    assert frames[-1].timestamp == datetime(2011, 1, 6, 17, 1, 6, 20000, tzinfo=UTC)
    gaps = np.diff([f.timestamp.timestamp() for f in frames])
    assert np.all((gaps > 2.5) & (gaps < 3.5))
    image = frames[0].image.astype(float)
    assert 2000 < np.median(image[:10, :10]) < np.median(image[100:156, 100:156])  # dark corners, brighter sky


def test_real_dasc_fits_frames_are_512_square_with_the_times_of_their_names():
    paths = sorted(shared(DASC).glob("PKR_DASC_*.FITS"))
    assert len(paths) == 4
    for path in paths:
        (frame,) = read_frames(path)
        wavelength, stamp = DASC_NAME.fullmatch(path.name).groups()
        assert frame.image.shape == (512, 512) and frame.image.dtype == np.uint16
        assert frame.timestamp == datetime.strptime(stamp, "%Y%m%d_%H%M%S.%f").replace(tzinfo=UTC)
        assert (frame.site, frame.imager) == ("pkr", "dasc") and frame.metadata["FILTWAV"] == wavelength
        with fits.open(path) as hdus:
            assert np.array_equal(frame.image, hdus[0].data)  # no negative values to unwrap here


def test_real_dasc_time_comes_from_the_name_when_the_header_has_none():
    path = sorted(shared(DASC).glob("PKR_DASC_0558_*.FITS"))[0]
    with fits.open(path) as hdus:
        header = hdus[0].header.copy()
        image = hdus[0].data.copy()
    for card in ("OBSDATE", "OBSSTART", "FNAME", "SITE"):
        del header[card]
    hdu = fits.PrimaryHDU(image, header)
    body = fits_body(hdu)
    (frame,) = decode_frames(body, path.name)
    assert frame.timestamp == datetime(2015, 10, 7, 8, 23, 51, 743000, tzinfo=UTC) and frame.site == "pkr"
    (frame,) = decode_frames(body, "renamed.fits")
    assert frame.timestamp is None and frame.site == ""


def test_real_oath_png_auto_channel_is_green():
    path = shared(OATH)
    (auto,) = read_frames(path)
    (green,) = read_frames(path, channel="green")
    (red,) = read_frames(path, channel="red")
    (luma,) = read_frames(path, channel="luminance")
    assert auto.image.shape == (256, 256) and auto.image.dtype == np.uint16
    assert np.array_equal(auto.image, green.image) and auto.image.max() > 30000 and not red.image.any()
    assert np.array_equal(luma.image, np.rint(green.image.astype(np.float32) * np.float32(0.587)).astype(np.uint16))


@pytest.mark.parametrize("name", ["20200508_060500_122643_gill_rgb-04_320ms_full.png", "20211030_060500_149606_gill_rgb-04_320ms_burst.png"])
def test_real_trex_rgb_png_is_luminance_in_16_bit_counts(name):
    path = shared(TREX / name)
    (auto,) = read_frames(path)
    (luma,) = read_frames(path, channel="luminance")
    (green,) = read_frames(path, channel="green")
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
        pillow_luma = np.asarray(image.convert("L")).astype(int)
    assert auto.image.shape == (480, 553) and auto.image.dtype == np.uint16
    assert np.array_equal(auto.image, luma.image)  # every channel carries data
    assert np.array_equal(green.image, pixels[..., 1].astype(np.uint16) * 257)
    assert np.abs(luma.image.astype(int) - pillow_luma * 257).max() <= 257  # Pillow's "L" rounds to 8 bits


# ----------------------------------------------------------------------------- synthetic: FITS


def fits_body(hdu: fits.PrimaryHDU) -> bytes:
    import io

    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


def test_fits_samples_become_counts():
    counts = np.array([[0, 1, 32767, 40000, 65535]], np.uint16)
    wrapped = counts.astype(np.int16)  # what a writer without BZERO stores: values over 32767 wrap negative
    assert wrapped.min() < 0
    for image in (wrapped.astype(">i2"), counts):  # astropy writes uint16 with BZERO = 32768
        (frame,) = decode_frames(fits_file(image), "f.fits")
        assert frame.image.dtype == np.uint16 and np.array_equal(frame.image, counts)
    (frame,) = decode_frames(fits_file(np.array([[0, 1, 255]], np.uint8)), "f.fits")
    assert frame.image.tolist() == [[0, 257, 65535]]
    (frame,) = decode_frames(fits_file(np.array([[0.4, 1000.6, 65535.0]], ">f4")), "f.fits")
    assert frame.image.tolist() == [[0, 1001, 65535]]
    with pytest.raises(InputError, match=r"^f\.fits: values outside 0\.\.65535 \(got -1\.\.0\)"):
        decode_frames(fits_file(np.array([[-1.0, 0.0]], ">f8")), "f.fits")


def test_fits_stack_and_header_times():
    stack = np.arange(3 * 40 * 50, dtype=">i2").reshape(3, 40, 50)
    frames = decode_frames(fits_file(stack, **{"DATE-OBS": "2015-10-07T08:23:51.743", "SITE": "PKR", "INSTRUME": "DASC"}), "s.fits")
    assert len(frames) == 3 and all(np.array_equal(f.image, s) for f, s in zip(frames, stack))
    assert {f.timestamp for f in frames} == {datetime(2015, 10, 7, 8, 23, 51, 743000, tzinfo=UTC)}
    assert (frames[0].site, frames[0].imager, frames[2].index) == ("pkr", "dasc", 2)
    (frame,) = decode_frames(fits_file(stack[0], **{"DATE-OBS": "2015-10-07", "TIME-OBS": "08:24:04.243"}), "s.fits")
    assert frame.timestamp == datetime(2015, 10, 7, 8, 24, 4, 243000, tzinfo=UTC)
    (frame,) = decode_frames(fits_file(stack[0], OBSDATE="2015-10-07", OBSSTART="08:23:59.586"), "s.fits")
    assert frame.timestamp == datetime(2015, 10, 7, 8, 23, 59, 586000, tzinfo=UTC)
    (frame,) = decode_frames(fits_file(stack[0], **{"DATE-OBS": "2015-10-07"}), "s.fits")
    assert frame.timestamp is None  # a date alone is not an exposure start


# ----------------------------------------------------------------------------- synthetic: CDF


@pytest.mark.parametrize("compress", [0, 6])
def test_cdf_round_trip(compress):
    times = [START + timedelta(seconds=3 * i) for i in range(4)]
    images = (np.arange(4 * 40 * 50).reshape(4, 40, 50) * 13 % 65536).astype(np.uint16)
    frames = decode_frames(cdf_file(images, times, "thg_asf_fsmi", compress), "thg_l1_asf_fsmi.cdf")
    assert len(frames) == 4 and all(np.array_equal(f.image, i) and f.image.dtype == np.uint16 for f, i in zip(frames, images))
    assert [f.timestamp for f in frames] == [t.replace(microsecond=t.microsecond // 1000 * 1000) for t in times]  # CDF_EPOCH: ms
    assert {f.site for f in frames} == {"fsmi"}
    (frame,) = decode_frames(cdf_file(images[:1], times[:1], compress=compress), "one.cdf")
    assert np.array_equal(frame.image, images[0])


# ----------------------------------------------------------------------------- synthetic: pictures


IMAGE16 = (np.arange(48 * 64).reshape(48, 64) * 21 % 65536).astype(np.uint16)
IMAGE8 = (np.arange(48 * 64).reshape(48, 64) % 256).astype(np.uint8)


def test_eight_bit_samples_are_scaled_by_257():
    ramp = np.array([[0, 1, 128, 255]], np.uint8)
    for body in (png16(ramp, bitdepth=8), pillow(ramp, "TIFF"), pillow(ramp, "PNG")):
        (frame,) = decode_frames(body, "ramp")
        assert frame.image.dtype == np.uint16 and frame.image.tolist() == [[0, 257, 32896, 65535]]


def test_sixteen_bit_and_wide_tiff_round_trips():
    (frame,) = decode_frames(pillow(IMAGE16, "TIFF"), "f.tif")
    assert np.array_equal(frame.image, IMAGE16)
    (frame,) = decode_frames(pillow(IMAGE16, "TIFF", compression="tiff_deflate"), "f.tif")
    assert np.array_equal(frame.image, IMAGE16)
    (frame,) = decode_frames(pillow(IMAGE16.astype(np.int32), "TIFF"), "f.tif")
    assert np.array_equal(frame.image, IMAGE16)
    (frame,) = decode_frames(pillow(IMAGE16.astype(np.float32) + 0.4, "TIFF"), "f.tif")
    assert np.array_equal(frame.image, IMAGE16)
    pages = [Image.fromarray(IMAGE16 // (i + 1)) for i in range(3)]
    frames = decode_frames(pillow(pages[0], "TIFF", save_all=True, append_images=pages[1:]), "pages.tif")
    assert [f.index for f in frames] == [0, 1, 2] and all(np.array_equal(f.image, IMAGE16 // (i + 1)) for i, f in enumerate(frames))


def test_colour_channels_and_luminance():
    zero = np.zeros_like(IMAGE8)
    colour = rgb(IMAGE8, 255 - IMAGE8, IMAGE8 // 2)
    luma = np.rint((colour.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) * 257).astype(np.uint16)
    for body in (png16(colour, bitdepth=8), pillow(colour, "TIFF"), pillow(colour, "PNG"), pillow(np.dstack([colour, IMAGE8]), "PNG")):
        assert np.array_equal(decode_frames(body, "c")[0].image, luma)  # auto: several channels carry data
        assert np.array_equal(decode_frames(body, "c", channel="luminance")[0].image, luma)
        for index, channel in enumerate(("red", "green", "blue")):
            assert np.array_equal(decode_frames(body, "c", channel=channel)[0].image, colour[..., index].astype(np.uint16) * 257)
    for index in range(3):  # auto: the one channel that carries data
        planes = [zero, zero, zero]
        planes[index] = IMAGE8
        assert np.array_equal(decode_frames(pillow(rgb(*planes), "TIFF"), "c")[0].image, IMAGE8.astype(np.uint16) * 257)
    distinct = np.stack([np.full((8, 8), v, np.uint16) for v in (1000, 2000, 3000, 65535)], axis=2)  # 16-bit RGBA: alpha dropped
    assert decode_frames(png16(distinct), "c")[0].image[0, 0] == round(0.299 * 1000 + 0.587 * 2000 + 0.114 * 3000)
    grey_alpha = np.stack([IMAGE8, 255 - IMAGE8], axis=2)
    assert np.array_equal(decode_frames(png16(grey_alpha, bitdepth=8), "c", channel="red")[0].image, IMAGE8.astype(np.uint16) * 257)
    with pytest.raises(InputError, match=r"^c: unknown channel 'purple', expected one of auto, red, green, blue, luminance$"):
        decode_frames(png16(colour, bitdepth=8), "c", channel="purple")


def test_jpeg_grey_and_colour():
    smooth = np.add.outer(np.arange(48), np.arange(64)).astype(np.uint8) * 2
    (frame,) = decode_frames(pillow(smooth, "JPEG", quality=95), "f.jpg")
    assert frame.image.shape == (48, 64) and frame.image.dtype == np.uint16
    assert np.abs(frame.image.astype(int) - smooth.astype(int) * 257).max() <= 4 * 257  # lossy
    colour = rgb(smooth, 255 - smooth, smooth // 2)
    (frame,) = decode_frames(pillow(colour, "JPEG", quality=95), "c.jpg", channel="green")
    assert np.abs(frame.image.astype(int) - (255 - smooth.astype(int)) * 257).max() <= 6 * 257


def test_any_frame_size_up_to_the_limit():
    for width, height in ((1024, 1024), (553, 480), (1, 1024)):
        (frame,) = decode_frames(pillow(np.zeros((height, width), np.uint8), "TIFF"), "big.tif")
        assert frame.image.shape == (height, width)
    for body in (pillow(np.zeros((4, 1025), np.uint8), "TIFF"), png16(np.zeros((1025, 4), np.uint8), bitdepth=8),
                 fits_file(np.zeros((4, 1025), ">i2")), pillow(np.zeros((1025, 8), np.uint8), "JPEG")):
        with pytest.raises(InputTooLarge, match=r"^big: (4x1025|1025x4|8x1025) pixels is over the limit of 1024 per side$"):
            decode_frames(body, "big")


# ----------------------------------------------------------------------------- bombs: memory

BOMB_CHILD = """
import json, sys, tracemalloc
sys.path.insert(0, sys.argv[1])
import hostile
from arcscan.errors import InputError
from arcscan.io.frames import decode_frames
for body in hostile.valid_bodies().values():  # imports, plugins, libraries: loaded before measuring
    decode_frames(body, "warm")

def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field))

tracemalloc.start()
answers, growth = {}, {}
for path in sys.argv[2:]:
    body = open(path, "rb").read()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak resident size (VmHWM) starts again from here
    resident, (traced, _) = status("VmRSS:"), tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    try:
        answers[path] = [frame.image.shape for frame in decode_frames(body, "bomb")]
    except InputError as error:
        answers[path] = error.status
    # Python's allocations exactly (numpy's too), the libraries' C ones as resident pages
    growth[path] = max(tracemalloc.get_traced_memory()[1] - traced, status("VmHWM:") - resident) / 2**20
print(json.dumps({"answers": answers, "growth_mb": growth}))
"""


def _text_chunks_png(count: int, size: int) -> bytes:
    """An 8-bit PNG carrying ``count`` zTXt chunks (each its own keyword) that each inflate to
    ``size`` bytes: Pillow would keep them all (up to 64 MiB)."""
    text = zlib.compress(b" " * size, 9)
    chunks = b"".join(_png_chunk(b"zTXt", f"Comment{i}".encode() + b"\x00\x00" + text) for i in range(count))
    body = png16(IMAGE8, bitdepth=8)
    return body[:33] + chunks + body[33:]  # after the signature and IHDR


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak memory through Linux's /proc/self")
def test_decompression_bombs_cost_under_50_mb(tmp_path):
    """Each decoded in a child process, its memory measured alone: refused ones before they
    allocate, accepted ones (a strip or text chunks that would inflate far) within bounds."""
    bombs = {
        "png 8-bit, 63 text chunks of 1 MB": (_text_chunks_png(63, 1_048_000), [[48, 64]]),
        "tiff claims 100000x100000": (_tiff(100_000, 100_000, zlib.compress(bytes(MIB)), compression=8), 413),
        "tiff 1024x1024, strip inflating to 128 MiB": (_tiff(1024, 1024, _zeros_deflated(128 * MIB), compression=8), [[1024, 1024]]),
        "jpeg claims 65000x65000": (_jpeg_claiming(65000, 65000), 413),
        "jpeg claims 1000x1000, holds 16x16": (_jpeg_claiming(1000, 1000), [[1000, 1000]]),  # libjpeg pads a short scan
        "png 8-bit bomb": (raw_png(1024, 1024, _zeros_deflated(128 * MIB), bitdepth=8), 400),
        "cdf block bomb": (_cdf_block_bomb(128 * MIB), 400),
        "fits claims 1024x1024 floats": (fits.Header([("SIMPLE", True), ("BITPIX", -64), ("NAXIS", 2), ("NAXIS1", 1024), ("NAXIS2", 1024)]).tostring().encode(), 400),
    }
    paths = {}
    for number, (label, (body, _)) in enumerate(bombs.items()):
        paths[label] = tmp_path / f"bomb{number}"
        paths[label].write_bytes(body)
    run = subprocess.run([sys.executable, "-c", BOMB_CHILD, str(ROOT / "tests"), *map(str, paths.values())],
                         capture_output=True, text=True, timeout=300, check=True, cwd=ROOT)
    result = json.loads(run.stdout.splitlines()[-1])
    assert {label: result["answers"][str(paths[label])] for label in bombs} == {label: expected for label, (_, expected) in bombs.items()}
    growth = {label: round(result["growth_mb"][str(paths[label])], 1) for label in bombs}
    assert max(growth.values()) < 50, growth


def test_the_crafted_tiff_of_the_hostile_cases_is_a_readable_tiff():
    (frame,) = decode_frames(_tiff(8, 4, bytes(range(32))), "t.tif")
    assert np.array_equal(frame.image, np.arange(32, dtype=np.uint16).reshape(4, 8) * 257)
