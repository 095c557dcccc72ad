"""Build the synthetic starter dataset in ``data/`` (deterministic from params.yaml ``starter``).

    python training/make_starter_data.py data

Writes ``data/train/`` and ``data/test/`` (THEMIS stream0 minutes ``*.pgm.gz`` with their
ground-truth masks ``*.mask.npz``; test minutes are other nights, never used for training)
and ``data/labels/{train,test}.csv``: patch centres picked from the ground truth the way a
person would pick them. The result is tracked by ``data.dvc``; ``make starter-data`` runs this
and pushes it to the DVC remote.
"""

import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from arcscan.config import load_settings
from arcscan.io.frames import read_frames
from arcscan.core.patches import pick_labels_from_truth, write_label_csv
from arcscan.core.synth import read_masks, write_minute


def write_split(folder: Path, seeds: list[int], frames_per_minute: int, month: int) -> tuple[list, np.ndarray]:
    """Minutes on different nights of ``month`` (one per seed); the frames as read back and
    their masks."""
    folder.mkdir(parents=True, exist_ok=True)
    frames, masks = [], []
    for night, seed in enumerate(seeds):
        start = datetime(2026, month, 1 + night, 6, 0, tzinfo=timezone.utc)
        frames_path, masks_path = write_minute(folder, seed, start, frames_per_minute)
        frames += read_frames(frames_path)
        masks.append(read_masks(masks_path))
    return frames, np.concatenate(masks)


def main(data: Path) -> None:
    settings = load_settings()
    starter, size, config = settings.starter, settings.patches.size, settings.preprocess
    base = starter.seed
    train = write_split(data / "train", [base + i for i in range(starter.train_minutes)], starter.frames_per_minute, month=1)
    test = write_split(data / "test", [base + 1000 + i for i in range(starter.test_minutes)], starter.frames_per_minute, month=2)
    rng = np.random.default_rng(starter.label_seed)
    for name, (frames, masks), n_pos, n_neg in (
        ("train", train, starter.train_positive, starter.train_negative),
        ("test", test, starter.test_positive, starter.test_negative),
    ):
        rows = pick_labels_from_truth(frames, masks, n_pos, n_neg, rng, config, size, settings.sky_finder())
        write_label_csv(data / "labels" / f"{name}.csv", rows)
        print(f"{name}: {len(frames)} frames, arc pixels {masks.mean():.2%}, {len(rows)} labelled picks")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
