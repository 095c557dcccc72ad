"""Patch sets: label CSV to labelled patches, uniform unlabeled draws, picks from ground truth."""

from datetime import datetime, timezone

import numpy as np
import pytest

from arcscan.errors import InputError
from arcscan.io.frames import read_frames
from arcscan.core.patches import (
    NEGATIVE, POSITIVE, UNLABELED, PatchSet, extract_patches, labelled_set, patch_mean,
    pick_labels_from_truth, read_label_csv, unlabeled_set, write_label_csv,
)
from arcscan.config import load_settings
from arcscan.core.geometry import disc_mask
from arcscan.core.preprocess import PreprocessConfig, model_view
from arcscan.core.synth import read_masks, write_minute

CONFIG = PreprocessConfig()
FIND_SKY = load_settings().sky_finder()  # the starter frames' profile: a disc of 112 px above 10 degrees
STARTER_SKY = disc_mask((256, 256), (127.5, 127.5), 112)


@pytest.fixture(scope="module")
def minute(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    frames_path, masks_path = write_minute(folder, seed=26, start=datetime(2026, 1, 1, 6, tzinfo=timezone.utc), n_frames=4)
    return folder, frames_path, read_masks(masks_path)


def test_patch_centre_convention():
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    (patch,) = extract_patches(image, np.array([5]), np.array([3]), 4)
    assert np.array_equal(patch, image[1:5, 3:7])  # rows y-2..y+1, columns x-2..x+1
    (corner,) = extract_patches(image, np.array([0]), np.array([0]), 4)
    assert np.array_equal(corner[:2], np.zeros((2, 4))) and corner[2, 2] == image[0, 0]
    assert patch_mean(image, 4)[3, 5] == pytest.approx(patch.mean())


def test_csv_to_labelled_set_with_provenance(minute, tmp_path):
    folder, frames_path, _ = minute
    csv = write_label_csv(tmp_path / "labels.csv", [
        {"file": frames_path.name, "frame": 1, "x": 100, "y": 120, "label": POSITIVE},
        {"file": frames_path.name, "frame": 2, "x": 60, "y": 70, "label": NEGATIVE},
    ])
    patches = labelled_set(csv, folder, CONFIG, 32, FIND_SKY)
    assert len(patches) == 2 and patches.images.shape == (2, 32, 32)
    positive = patches.subset(patches.labels == POSITIVE)
    assert (positive.files[0], positive.frames[0], positive.xs[0], positive.ys[0]) == (frames_path.name, 1, 100, 120)
    frame = read_frames(frames_path)[1]
    view = model_view(frame, FIND_SKY(frame.image, frame.site, frame.imager), CONFIG)
    assert view.scale == 1.0 and np.array_equal(view.sky.mask, STARTER_SKY)
    expected = extract_patches(view.model01, [100], [120], 32)[0]
    assert np.array_equal(positive.images[0], expected)
    path = patches.save(tmp_path / "set.npz")
    again = PatchSet.load(path)
    assert all(np.array_equal(getattr(again, k), getattr(patches, k)) for k in ("images", "labels", "files", "xs", "ys"))


@pytest.mark.parametrize(("row", "message"), [
    ("f.pgm.gz,0,1,2,maybe", "label 'maybe'"),
    ("f.pgm.gz,zero,1,2,arc", "invalid literal"),
])
def test_bad_label_rows_are_named(tmp_path, row, message):
    csv = tmp_path / "labels.csv"
    csv.write_text("file,frame,x,y,label\n" + row + "\n")
    with pytest.raises(InputError, match=message):
        read_label_csv(csv)


def test_labels_outside_the_frame_or_file_are_refused(minute, tmp_path):
    folder, frames_path, _ = minute
    csv = tmp_path / "labels.csv"
    csv.write_text(f"file,frame,x,y,label\n{frames_path.name},9,10,10,arc\n")
    with pytest.raises(InputError, match="has 4 frames, no frame 9"):
        labelled_set(csv, folder, CONFIG, 32, FIND_SKY)
    csv.write_text(f"file,frame,x,y,label\n{frames_path.name},0,300,10,arc\n")
    with pytest.raises(InputError, match="outside"):
        labelled_set(csv, folder, CONFIG, 32, FIND_SKY)
    csv.write_text("file,x,y,label\n")
    with pytest.raises(InputError, match="missing columns"):
        read_label_csv(csv)


def test_unlabeled_centres_lie_in_the_sky_disc_and_carry_truth(minute):
    _, frames_path, masks = minute
    patches = unlabeled_set([frames_path], 500, np.random.default_rng(0), CONFIG, 32, FIND_SKY, {frames_path.name: masks})
    assert len(patches) == 500 and (patches.labels == UNLABELED).all()
    assert STARTER_SKY[patches.ys, patches.xs].all()
    assert np.array_equal(patches.truth, masks[patches.frames, patches.ys, patches.xs].astype(np.int8))
    again = unlabeled_set([frames_path], 500, np.random.default_rng(0), CONFIG, 32, FIND_SKY)
    assert np.array_equal(again.xs, patches.xs)  # seeded


def test_picks_from_truth_imitate_a_person(minute):
    _, frames_path, masks = minute
    frames = read_frames(frames_path)
    rows = pick_labels_from_truth(frames, masks, 20, 20, np.random.default_rng(1), CONFIG, 32, FIND_SKY)
    assert sum(r["label"] == POSITIVE for r in rows) == 20 and sum(r["label"] == NEGATIVE for r in rows) == 20
    for row in rows:
        mask = masks[row["frame"]]
        coverage = patch_mean(mask.astype(np.float32), 32)[row["y"], row["x"]]
        if row["label"] == POSITIVE:
            assert mask[row["y"], row["x"]] and coverage >= 0.10
        else:
            assert coverage == 0
