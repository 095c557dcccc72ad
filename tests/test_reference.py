"""The real dataset's reference masks and arc-free list: round trip and refusal of foreign files."""

import numpy as np
import pytest

from arcscan.errors import InputError
from arcscan.io.reference import arc_free_files, read_reference, references, write_arc_free_list, write_reference


def test_reference_round_trip_beside_its_frames_file(tmp_path):
    frames = tmp_path / "20150213_0558.FITS"
    arcs = np.zeros((2, 8, 10), np.int16)
    arcs[1, 2:4, 3:9] = 1
    ignore = np.zeros((2, 8, 10), bool)
    ignore[0, 0, 0] = True
    path = write_reference(frames, arcs, ignore)
    assert path.name == "20150213_0558.FITS.ref.npz"
    (found,) = references(tmp_path)
    assert found.frames == frames
    assert np.array_equal(found.arcs, arcs) and np.array_equal(found.ignore, ignore)
    assert references(tmp_path / "absent") == []


def test_foreign_or_inconsistent_references_are_refused(tmp_path):
    with pytest.raises(ValueError):
        write_reference(tmp_path / "x.png", np.zeros((1, 4, 4), np.int16), np.zeros((1, 4, 5), bool))
    (tmp_path / "text.png.ref.npz").write_text("not an npz")
    with pytest.raises(InputError, match="not a reference"):
        read_reference(tmp_path / "text.png.ref.npz")
    np.savez_compressed(tmp_path / "other.png.ref.npz", arcs=np.zeros((4, 4), np.int16), ignore=np.zeros((4, 4), bool))
    with pytest.raises(InputError, match="equal"):
        read_reference(tmp_path / "other.png.ref.npz")


def test_arc_free_list(tmp_path):
    assert arc_free_files(tmp_path) == []
    write_arc_free_list(tmp_path, ["a.png", "b.pgm.gz"])
    assert arc_free_files(tmp_path) == [tmp_path / "a.png", tmp_path / "b.pgm.gz"]
