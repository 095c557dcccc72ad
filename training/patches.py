"""Stage `patches`: label CSVs + frames -> labelled and unlabeled patch sets.

    python training/patches.py data patches

Writes ``patches/train.npz`` (the labelled training picks plus ``n_unlabeled`` patches drawn
uniformly from inside the sky disc of the training frames) and ``patches/test.npz`` (the
held-out labelled picks, from frames never used for training), and ``patches/summary.json``.
"""

import json
import sys
from pathlib import Path

import numpy as np

from arcscan.config import load_settings
from arcscan.core.patches import POSITIVE, NEGATIVE, PatchSet, labelled_set, unlabeled_set
from arcscan.core.synth import mask_path, read_masks


def main(data: Path, out: Path) -> None:
    settings = load_settings()
    config, patches = settings.preprocess, settings.patches
    size = patches.size
    frame_paths = sorted((data / "train").glob("*.pgm*"))
    masks = {p.name: read_masks(mask_path(p)) for p in frame_paths if mask_path(p).exists()}

    labelled = labelled_set(data / "labels" / "train.csv", data / "train", config, size)
    rng = np.random.default_rng(patches.seed)
    chosen = []
    for label, count in ((POSITIVE, patches.n_positive), (NEGATIVE, patches.n_negative)):
        candidates = np.flatnonzero(labelled.labels == label)
        if len(candidates) < count:
            raise SystemExit(f"train.csv has {len(candidates)} patches labelled {label}, fewer than the {count} asked for")
        chosen.append(rng.choice(candidates, count, replace=False))
    labelled = labelled.subset(np.sort(np.concatenate(chosen)))
    unlabeled = unlabeled_set(frame_paths, patches.n_unlabeled, rng, config, size, masks)
    train = PatchSet.concatenate([labelled, unlabeled])
    test = labelled_set(data / "labels" / "test.csv", data / "test", config, size)

    out.mkdir(parents=True, exist_ok=True)
    train.save(out / "train.npz")
    test.save(out / "test.npz")
    known = unlabeled.truth >= 0
    summary = {
        "train": {"positive": int((train.labels == 1).sum()), "negative": int((train.labels == 0).sum()), "unlabeled": int((train.labels == -1).sum())},
        "test": {"positive": int((test.labels == 1).sum()), "negative": int((test.labels == 0).sum())},
        "unlabeled_true_prior": float(unlabeled.truth[known].mean()) if known.any() else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
