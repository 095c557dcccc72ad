"""The real dataset's own files beside the frames: reference arc masks of the validation frames
(``<frames file>.ref.npz``) and the list of training frames without arcs (``arc_free.txt``).

A reference holds ``arcs`` (int16, (n_frames, H, W): 0 no arc, k > 0 the k-th arc of that
frame) and ``ignore`` (bool, same shape: pixels where the arc boundary is ambiguous, left out
of every score). ``training/make_real_data.py`` writes them, evaluation and benchmarks read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arcscan.errors import InputError

REFERENCE_SUFFIX = ".ref.npz"
ARC_FREE_LIST = "arc_free.txt"  # one file name per line, in the folder of the frames it names


@dataclass(frozen=True)
class Reference:
    """The reference masks of one frames file."""

    frames: Path  # the frames file they describe
    arcs: np.ndarray  # int16 (n_frames, H, W): arc instance per pixel, 0 none
    ignore: np.ndarray  # bool (n_frames, H, W): left out of every score


def write_reference(frames: Path, arcs: np.ndarray, ignore: np.ndarray) -> Path:
    """Save the reference masks of ``frames`` beside it."""
    if arcs.shape != ignore.shape or arcs.ndim != 3:
        raise ValueError(f"{frames.name}: arcs {arcs.shape} and ignore {ignore.shape} must be equal (n, H, W) shapes")
    path = frames.with_name(frames.name + REFERENCE_SUFFIX)
    np.savez_compressed(path, arcs=arcs.astype(np.int16), ignore=ignore.astype(bool))
    return path


def read_reference(path: Path) -> Reference:
    """The reference stored at ``path`` (``<frames file>.ref.npz``)."""
    try:
        with np.load(path) as stored:
            arcs, ignore = stored["arcs"], stored["ignore"]
    except (OSError, KeyError, ValueError) as error:
        raise InputError(f"{path}: not a reference mask file ({error})") from None
    if arcs.ndim != 3 or arcs.shape != ignore.shape:
        raise InputError(f"{path}: arcs {arcs.shape} and ignore {ignore.shape} must be equal (n, H, W) shapes")
    return Reference(path.with_name(path.name.removesuffix(REFERENCE_SUFFIX)), arcs, ignore.astype(bool))


def references(folder: Path) -> list[Reference]:
    """Every reference in ``folder``, sorted by file name (none when the folder is absent)."""
    return [read_reference(path) for path in sorted(folder.glob(f"*{REFERENCE_SUFFIX}"))] if folder.is_dir() else []


def arc_free_files(folder: Path) -> list[Path]:
    """The frames files ``folder/arc_free.txt`` lists (none without the list)."""
    listing = folder / ARC_FREE_LIST
    return [folder / name for name in listing.read_text().split()] if listing.is_file() else []


def write_arc_free_list(folder: Path, names: list[str]) -> Path:
    """Write ``folder/arc_free.txt`` naming the frames files without arcs."""
    path = folder / ARC_FREE_LIST
    path.write_text("".join(f"{name}\n" for name in names))
    return path
