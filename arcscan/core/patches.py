"""Patch sets: labelled (arc / other) patches with provenance, and unlabeled patches.

A patch of size s is centred on pixel (x, y): rows y - s/2 .. y + s/2 - 1, columns likewise,
cut from the frame normalised and resampled to the model's scale
(:func:`arcscan.core.preprocess.model_view`) with zeros beyond the frame edge. The raster scan
in :mod:`arcscan.core.segment` uses the same convention, so a pixel's score at test time is the
score of exactly such a patch. Centres are given and recorded in the frame's own pixels.

Labels come from a CSV of patch centres (``file,frame,x,y,label`` with label ``arc``/``other``
or ``1``/``0``; further columns, such as the labelling page's ``who,when``, are ignored) that a
person writes while looking at frames (or places on the page, :mod:`arcscan.label`); for synthetic frames
:func:`pick_labels_from_truth` imitates such a person using the ground-truth masks.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter

from arcscan.errors import InputError
from arcscan.core.geometry import SkyFinder
from arcscan.core.preprocess import ModelView, PreprocessConfig, model_view
from arcscan.io.frames import Frame, read_frames

POSITIVE, NEGATIVE, UNLABELED = 1, 0, -1
CSV_FIELDS = ("file", "frame", "x", "y", "label")
_LABEL_WORDS = {"arc": POSITIVE, "1": POSITIVE, "other": NEGATIVE, "0": NEGATIVE}


@dataclass(frozen=True)
class PatchConfig:
    """Patch size (the one setting of it: training, scan and checkpoint follow) and how many
    labelled and unlabeled patches a training set takes: synthetic picks, every real label,
    unlabeled patches from synthetic and real frames, negatives from real arc-free frames."""

    size: int = 32
    n_positive: int = 100
    n_negative: int = 100
    n_unlabeled: int = 3000
    n_unlabeled_real: int = 1000
    n_negative_arc_free: int = 200
    seed: int = 0


@dataclass
class PatchSet:
    """Patches (n, s, s) float32 in [0, 1], labels (1 arc, 0 other, -1 unlabeled) and
    provenance (file name, frame index, centre x, y). ``truth`` is the ground-truth class
    of the centre pixel where known (synthetic frames), else -1."""

    images: np.ndarray
    labels: np.ndarray
    files: np.ndarray
    frames: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    truth: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> "PatchSet":
        return PatchSet(*(getattr(self, name)[mask] for name in _FIELDS))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **{name: getattr(self, name) for name in _FIELDS})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PatchSet":
        with np.load(path, allow_pickle=False) as data:
            return cls(*(data[name] for name in _FIELDS))

    @classmethod
    def concatenate(cls, sets: list["PatchSet"]) -> "PatchSet":
        return cls(*(np.concatenate([getattr(s, name) for s in sets]) for name in _FIELDS))


_FIELDS = ("images", "labels", "files", "frames", "xs", "ys", "truth")


def extract_patches(image01: np.ndarray, xs: np.ndarray, ys: np.ndarray, size: int) -> np.ndarray:
    """Patches of ``size`` centred on (xs[i], ys[i]) of a normalised frame, zero-padded."""
    half = size // 2
    padded = np.pad(image01, half)
    return np.stack([padded[y : y + size, x : x + size] for x, y in zip(xs, ys)]).astype(np.float32)


def to_model(xs, ys, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame pixel centres -> the nearest pixels at the model's scale."""
    return tuple(np.rint((np.asarray(v, float) + 0.5) * scale - 0.5).astype(int) for v in (xs, ys))


def to_frame(xs, ys, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels at the model's scale -> the nearest frame pixels."""
    return tuple(np.rint((np.asarray(v, float) + 0.5) / scale - 0.5).astype(int) for v in (xs, ys))


def view_of(frame: Frame, find_sky: SkyFinder, config: PreprocessConfig) -> ModelView:
    """The frame as the model sees it, on the sky its profile or its own pixels give."""
    return model_view(frame, find_sky(frame.image, frame.site, frame.imager, f"{frame.source}: frame {frame.index}"), config)


def patch_set(view: ModelView, xs, ys, size, label, file, frame, truth=None) -> PatchSet:
    """Patches centred on frame pixels (xs, ys), cut at the model's scale."""
    n = len(xs)
    mx, my = to_model(xs, ys, view.scale)
    return PatchSet(
        images=extract_patches(view.model01, np.clip(mx, 0, view.model01.shape[1] - 1), np.clip(my, 0, view.model01.shape[0] - 1), size),
        labels=np.full(n, label, np.int8),
        files=np.full(n, file),
        frames=np.full(n, frame, np.int32),
        xs=np.asarray(xs, np.int32),
        ys=np.asarray(ys, np.int32),
        truth=np.full(n, -1, np.int8) if truth is None else np.asarray(truth, np.int8),
    )


def read_label_csv(path: str | Path) -> list[dict]:
    """Rows of a label CSV, validated (numbers are numbers, labels are arc/other/1/0)."""
    path = Path(path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(CSV_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path.name}: missing columns {sorted(missing)}; expected {','.join(CSV_FIELDS)}")
        rows = [label_row(row, f"{path.name} line {line}") for line, row in enumerate(reader, start=2)]
    return rows


def label_row(row: dict, where: str) -> dict:
    """One CSV row (a ``csv.DictReader`` dict; other columns, such as who/when, are ignored)
    as ``file, frame, x, y, label`` with numbers and the label as 1/0; InputError naming
    ``where`` otherwise."""
    if any(row.get(name) is None for name in CSV_FIELDS):
        raise InputError(f"{where}: {len([v for v in row.values() if v is not None])} fields, expected at least {len(CSV_FIELDS)}")
    label = _LABEL_WORDS.get(row["label"].strip().lower())
    if label is None:
        raise InputError(f"{where}: label {row['label']!r}, expected arc/other or 1/0")
    try:
        return {"file": row["file"].strip(), "frame": int(row["frame"]), "x": int(row["x"]), "y": int(row["y"]), "label": label}
    except ValueError as err:
        raise InputError(f"{where}: {err}") from err


def write_label_csv(path: str | Path, rows: list[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "label": "arc" if row["label"] == POSITIVE else "other"})
    return path


def labelled_set(csv_path: str | Path, frames_dir: str | Path, config: PreprocessConfig, size: int, find_sky: SkyFinder) -> PatchSet:
    """Turn a label CSV into a labelled patch set (frames looked up in ``frames_dir``)."""
    rows = read_label_csv(csv_path)
    sets = []
    for file, frame_rows in _group_by_file(rows).items():
        path = Path(frames_dir) / file
        if not path.is_file():
            raise InputError(f"{csv_path}: {file} not found in {frames_dir}")
        frames = read_frames(path)
        for row in frame_rows:
            if not 0 <= row["frame"] < len(frames):
                raise InputError(f"{csv_path}: {file} has {len(frames)} frames, no frame {row['frame']}")
            frame = frames[row["frame"]]
            height, width = frame.image.shape
            if not (0 <= row["x"] < width and 0 <= row["y"] < height):
                raise InputError(f"{csv_path}: centre ({row['x']}, {row['y']}) is outside {file} frame {row['frame']}")
        for index in sorted({row["frame"] for row in frame_rows}):
            picks = [row for row in frame_rows if row["frame"] == index]
            view = view_of(frames[index], find_sky, config)
            for label in (POSITIVE, NEGATIVE):
                chosen = [row for row in picks if row["label"] == label]
                if chosen:
                    xs, ys = [r["x"] for r in chosen], [r["y"] for r in chosen]
                    sets.append(patch_set(view, xs, ys, size, label, file, index))
    if not sets:
        raise InputError(f"{csv_path}: no labelled patches")
    return PatchSet.concatenate(sets)


def unlabeled_set(
    frame_paths: list[Path],
    n: int,
    rng: np.random.Generator,
    config: PreprocessConfig,
    size: int,
    find_sky: SkyFinder,
    masks: dict[str, np.ndarray] | None = None,
) -> PatchSet:
    """``n`` patches with centres drawn uniformly from the sky (at the model's scale) of
    uniformly drawn frames. ``masks`` (file name -> ground-truth masks) fills in ``truth``."""
    frames = [(path.name, frame) for path in frame_paths for frame in read_frames(path)]
    picks = rng.integers(0, len(frames), n)
    sets = []
    for index in np.unique(picks):
        name, frame = frames[index]
        count = int((picks == index).sum())
        view = view_of(frame, find_sky, config)
        centres = rng.choice(np.flatnonzero(view.model_sky), count, replace=True)
        my, mx = np.unravel_index(centres, view.model_sky.shape)
        xs, ys = (np.clip(v, 0, n - 1) for v, n in zip(to_frame(mx, my, view.scale), frame.image.shape[::-1]))
        truth = masks[name][frame.index][ys, xs] if masks and name in masks else None
        sets.append(patch_set(view, xs, ys, size, UNLABELED, name, frame.index, truth))
    return PatchSet.concatenate(sets)


def pick_labels_from_truth(
    frames: list[Frame],
    masks: np.ndarray,
    n_positive: int,
    n_negative: int,
    rng: np.random.Generator,
    config: PreprocessConfig,
    size: int,
    find_sky: SkyFinder,
) -> list[dict]:
    """Imitate a person labelling synthetic frames: positives centred on clear arcs (the
    centre on an arc and at least 10% of the patch arc), negatives centred well away from any
    arc (no arc pixel in the patch), half of them on the brightest non-arc sky (moon, clouds,
    diffuse aurora: the confusers a person would deliberately pick), half anywhere."""
    positives, negatives = [], []
    for frame, mask in zip(frames, masks):
        view = view_of(frame, find_sky, config)
        fov, image01 = view.sky.mask, view.image01
        coverage = patch_mean(mask.astype(np.float32), int(round(size / view.scale)))
        clear_arc = mask & (coverage >= 0.10) & fov
        no_arc = (coverage == 0) & fov
        bright = no_arc & (image01 >= np.percentile(image01[no_arc], 90)) if no_arc.any() else no_arc
        positives += [(frame, i) for i in np.flatnonzero(clear_arc)]
        negatives += [(frame, i, b) for i, b in zip(np.flatnonzero(no_arc), bright.ravel()[np.flatnonzero(no_arc)])]
    if len(positives) < n_positive or len(negatives) < n_negative:
        raise InputError(f"frames hold {len(positives)} arc and {len(negatives)} non-arc candidate centres, too few")
    chosen_p = [positives[i] for i in rng.choice(len(positives), n_positive, replace=False)]
    bright_n = [c for c in negatives if c[2]]
    n_bright = min(n_negative // 2, len(bright_n))
    chosen_n = [bright_n[i] for i in rng.choice(len(bright_n), n_bright, replace=False)]
    rest = [c for c in negatives if not c[2]]
    chosen_n += [rest[i] for i in rng.choice(len(rest), n_negative - n_bright, replace=False)]
    rows = []
    for items, label in ((chosen_p, POSITIVE), (chosen_n, NEGATIVE)):
        for frame, flat, *_ in items:
            y, x = np.unravel_index(flat, frame.image.shape)
            rows.append({"file": frame.source, "frame": frame.index, "x": int(x), "y": int(y), "label": label})
    return sorted(rows, key=lambda r: (r["file"], r["frame"], r["y"], r["x"]))


def patch_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Mean of ``image`` over the patch centred on each pixel (zero beyond the edge); scipy's
    even-sized window covers y - size/2 .. y + size/2 - 1, the patch convention."""
    return uniform_filter(image, size=size, mode="constant")


def _group_by_file(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["file"], []).append(row)
    return groups
