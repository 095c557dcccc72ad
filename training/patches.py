"""Stage `patches`: label CSVs + frames -> labelled and unlabeled patch sets.

    python training/patches.py data patches

Writes ``patches/train.npz``: ``n_positive`` / ``n_negative`` of the synthetic labelled picks
(``data/labels/train.csv`` on ``data/train``), every real label (``data/real/labels.csv`` on
``data/real/train``), ``n_negative_arc_free`` patches drawn at random from the sky of the real
frames listed in ``data/real/train/arc_free.txt`` (frames without any arc: every patch is a
negative), and ``n_unlabeled`` + ``n_unlabeled_real`` patches drawn uniformly from the sky of
the synthetic and the real training frames. ``patches/test.npz``: the held-out synthetic
labelled picks (frames never used for training). ``patches/summary.json``: the counts.
"""

import json
import sys
from pathlib import Path

import numpy as np

from arcscan.config import load_settings
from arcscan.core.patches import NEGATIVE, POSITIVE, UNLABELED, PatchSet, labelled_set, unlabeled_set
from arcscan.core.synth import mask_path, read_masks
from arcscan.io.reference import ARC_FREE_LIST, arc_free_files


def counts(patches: PatchSet) -> dict[str, int]:
    return {name: int((patches.labels == label).sum()) for name, label in (("positive", POSITIVE), ("negative", NEGATIVE), ("unlabeled", UNLABELED))}


def main(data: Path, out: Path) -> None:
    settings = load_settings()
    config, patches = settings.preprocess, settings.patches
    size, find_sky = patches.size, settings.sky_finder()
    rng = np.random.default_rng(patches.seed)

    synthetic_paths = sorted((data / "train").glob("*.pgm*"))
    masks = {p.name: read_masks(mask_path(p)) for p in synthetic_paths if mask_path(p).exists()}
    synthetic = labelled_set(data / "labels" / "train.csv", data / "train", config, size, find_sky)
    chosen = []
    for label, count in ((POSITIVE, patches.n_positive), (NEGATIVE, patches.n_negative)):
        candidates = np.flatnonzero(synthetic.labels == label)
        if len(candidates) < count:
            raise SystemExit(f"train.csv has {len(candidates)} patches labelled {label}, fewer than the {count} asked for")
        chosen.append(rng.choice(candidates, count, replace=False))
    synthetic = synthetic.subset(np.sort(np.concatenate(chosen)))

    real_dir = data / "real" / "train"
    real = labelled_set(data / "real" / "labels.csv", real_dir, config, size, find_sky)
    real_paths = sorted(p for p in real_dir.iterdir() if p.is_file() and p.name != ARC_FREE_LIST)
    arc_free_paths = arc_free_files(real_dir)
    arc_free = unlabeled_set(arc_free_paths, patches.n_negative_arc_free, rng, config, size, find_sky)
    arc_free.labels[:] = NEGATIVE
    unlabeled = unlabeled_set(synthetic_paths, patches.n_unlabeled, rng, config, size, find_sky, masks)
    unlabeled_real = unlabeled_set(real_paths, patches.n_unlabeled_real, rng, config, size, find_sky)

    train = PatchSet.concatenate([synthetic, real, arc_free, unlabeled, unlabeled_real])
    test = labelled_set(data / "labels" / "test.csv", data / "test", config, size, find_sky)
    out.mkdir(parents=True, exist_ok=True)
    train.save(out / "train.npz")
    test.save(out / "test.npz")
    known = unlabeled.truth >= 0
    summary = {
        "train": counts(train),
        "synthetic": counts(synthetic) | {"unlabeled": len(unlabeled)},
        "real": counts(real) | {"arc_free_negative": len(arc_free), "unlabeled": len(unlabeled_real)},
        "test": counts(test),
        "synthetic_unlabeled_true_prior": float(unlabeled.truth[known].mean()) if known.any() else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
