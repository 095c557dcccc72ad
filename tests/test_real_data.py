"""The real-frame part of the starter dataset (data/real, built by training/make_real_data.py):
hand-made patch labels on the training frames, reference arc masks of the validation frames.

Skipped, with the reason, when data/real is absent (a fresh clone before ``dvc pull``)."""

from __future__ import annotations

import csv
import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from arcscan.io.frames import read_frames
from arcscan.io.reference import REFERENCE_SUFFIX, read_reference

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data" / "real"
SCRIPT = ROOT / "training" / "make_real_data.py"

pytestmark = pytest.mark.skipif(not (REAL / "labels.csv").is_file(), reason=f"real dataset not present ({REAL}; run dvc pull or training/make_real_data.py)")


def _load_script():
    spec = importlib.util.spec_from_file_location("make_real_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _load_script()


@pytest.fixture(scope="module")
def labels() -> list[dict]:
    with (REAL / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == ["file", "frame", "x", "y", "label"]
    return rows


@pytest.fixture(scope="module")
def reference(script) -> dict:
    return script.load_reference()


@pytest.fixture(scope="module")
def masks(script) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for rel in script.FILES["valid"]:
        name = Path(rel).name
        reference = read_reference(REAL / "valid" / f"{name}{REFERENCE_SUFFIX}")
        out[name] = (reference.arcs, reference.ignore)
    return out


def test_every_file_of_the_split_is_present(script):
    for split, rels in script.FILES.items():
        for rel in rels:
            assert (REAL / split / Path(rel).name).is_file(), f"{split}/{Path(rel).name} missing"
    assert (REAL / "README.md").is_file()


def test_labels_name_training_frames_and_lie_inside_them(script, labels):
    training = {Path(rel).name for rel in script.FILES["train"]}
    frames = {name: read_frames(REAL / "train" / name) for name in {row["file"] for row in labels}}
    for row in labels:
        assert row["file"] in training, f"{row['file']} is not a training file"
        assert row["label"] in ("arc", "other")
        stack = frames[row["file"]]
        index, x, y = int(row["frame"]), int(row["x"]), int(row["y"])
        assert 0 <= index < len(stack), f"{row['file']} has no frame {index}"
        height, width = stack[index].image.shape
        assert 0 <= x < width and 0 <= y < height, f"{row} lies outside a {width} x {height} frame"


def test_label_counts(labels):
    counts = Counter(row["label"] for row in labels)
    assert counts["arc"] >= 60 and counts["other"] >= 150, counts
    arc_files = {row["file"] for row in labels if row["label"] == "arc"}
    assert arc_files == {"00053.png", "20211030_060500_149606_gill_rgb-04_320ms_burst.png"}
    assert len({row["file"] for row in labels if row["label"] == "other"}) == 5


def test_no_validation_file_is_labelled(script, labels):
    validation = {Path(rel).name for rel in script.FILES["valid"]}
    assert not validation & {row["file"] for row in labels}


def test_mask_shapes_and_dtypes(script, masks):
    for name, (arcs, ignore) in masks.items():
        frames = read_frames(REAL / "valid" / name)
        assert arcs.dtype == np.int16 and ignore.dtype == np.bool_, name
        assert arcs.shape == ignore.shape == (len(frames), *frames[0].image.shape), name
        assert not (ignore & (arcs > 0)).any(), f"{name}: arc pixels also ignored"
        assert arcs.min() >= 0


def test_gako_has_no_arcs_and_dasc_frames_have_some(masks):
    arcs, ignore = masks["thg_l1_asf_gako_2011010617_v01.cdf"]
    assert arcs.shape[0] == 23 and not arcs.any()
    assert 0.5 < (~ignore).mean() < 0.8  # scored: the lit disc less the obstructions
    for name, (arcs, _) in masks.items():
        if name.startswith("PKR_DASC"):
            for frame in arcs:
                n = int(frame.max())
                assert n >= 1, f"{name}: no reference arc"
                assert set(np.unique(frame)) == set(range(n + 1)), f"{name}: arcs not numbered 1..{n}"


def test_masks_rebuild_identically_from_the_yaml(script, reference, masks):
    for name, (arcs, ignore) in masks.items():
        rebuilt_arcs, rebuilt_ignore = script.reference_masks(REAL / "valid" / name, reference["files"][name], reference["defaults"], REAL / "cal")
        np.testing.assert_array_equal(rebuilt_arcs, arcs, err_msg=name)
        np.testing.assert_array_equal(rebuilt_ignore, ignore, err_msg=name)
