"""Drift of what an imager sends against the training set: the distributions of per-frame sky
brightness and arc fraction over the last frames of each imager against the training set's.

Two per-frame quantities are watched:

* ``intensity``: log10 of the frame's median counts above its dark level (the 1st
  percentile: the CCD bias of the unlit corners), a scale-free measure of how bright the sky is;
* ``arc_fraction``: the share of the sky the model calls arc (from the answer).

The score is the population stability index, PSI = sum (p - q) ln(p / q) over fixed bins, of
the last ``window`` frames (p) against the reference (q), both smoothed by half a frame per bin
so that an empty bin stays finite: about 0 for the same distribution, above 0.25 by the usual
rule of thumb for a real shift (a moonlit or cloudy sky, a stuck or failing camera). The
reference is a JSON file (:func:`reference_from_minutes` builds it from training minutes with
ground-truth masks: ``python -m arcscan.ops.stream.drift data/train -o drift_reference.json``).
"""

from __future__ import annotations

import argparse
import json
import threading
from collections import defaultdict, deque
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from arcscan.errors import InputError

QUANTITIES = ("intensity", "arc_fraction")
BINS = {"intensity": np.linspace(0.0, 4.5, 19), "arc_fraction": np.array([0.0, 1e-6, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 1.0])}


def sky_brightness(image: np.ndarray) -> float:
    """log10 of the median counts above the 1st percentile (the ``intensity`` quantity)."""
    dark, median = np.percentile(image, [1, 50])
    return float(np.log10(1.0 + max(float(median - dark), 0.0)))


def histogram(values: Iterable[float], quantity: str) -> np.ndarray:
    """Counts of ``values`` in the quantity's bins (values beyond the ends in the end bins)."""
    edges = BINS[quantity]
    clipped = np.clip(np.asarray(list(values), float), edges[0], np.nextafter(edges[-1], edges[0]))
    return np.histogram(clipped, edges)[0].astype(float)


def psi(counts: np.ndarray, reference: np.ndarray) -> float:
    """Population stability index of ``counts`` against ``reference`` (both per bin)."""
    p = (counts + 0.5) / (counts.sum() + 0.5 * counts.size)
    q = (reference + 0.5) / (reference.sum() + 0.5 * reference.size)
    return float(np.sum((p - q) * np.log(p / q)))


def reference_from_minutes(folder: str | Path) -> dict:
    """The reference histograms of the synthetic training minutes in ``folder`` (stream0 files
    with their ``.mask.npz`` ground truth; the arc fraction of the truth within the disc of
    0.44 frame widths about the centre, the synthetic sky above about 10 degrees)."""
    from arcscan.core.synth import mask_path, read_masks
    from arcscan.io.frames import read_frames

    values: dict[str, list[float]] = {q: [] for q in QUANTITIES}
    files = sorted(Path(folder).glob("*.pgm.gz"))
    if not files:
        raise InputError(f"{folder}: no stream0 minutes")
    for path in files:
        frames, masks = read_frames(path), read_masks(mask_path(path))
        rows, cols = np.indices(masks.shape[1:])
        disc = np.hypot(rows - (rows.shape[0] - 1) / 2, cols - (cols.shape[1] - 1) / 2) <= 0.44 * min(rows.shape)
        for frame, mask in zip(frames, masks):
            values["intensity"].append(sky_brightness(frame.image))
            values["arc_fraction"].append(float(mask[disc].mean()))
    return {"source": str(folder), "frames": len(values["intensity"])} | {q: histogram(values[q], q).tolist() for q in QUANTITIES}


def load_reference(path: str | Path) -> dict[str, np.ndarray]:
    """The reference histograms of a file written by :func:`reference_from_minutes`."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"drift reference {path}: unreadable ({err})") from err
    return reference_histograms(document, str(path))


def reference_histograms(document: dict, source: str = "drift reference") -> dict[str, np.ndarray]:
    """The per-quantity bin counts of a reference document, checked against the bins."""
    try:
        reference = {q: np.asarray(document[q], float) for q in QUANTITIES}
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{source}: no histogram of {err}") from err
    for quantity, counts in reference.items():
        if counts.shape != (len(BINS[quantity]) - 1,) or counts.sum() <= 0:
            raise InputError(f"{source}: {quantity} needs {len(BINS[quantity]) - 1} bin counts")
    return reference


class DriftMonitor:
    """The last ``window`` values of each quantity per imager and their PSI against the
    reference (thread-safe)."""

    def __init__(self, reference: dict[str, np.ndarray], window: int = 200) -> None:
        self.reference = reference
        self._values: dict[tuple[str, str], deque] = defaultdict(lambda: deque(maxlen=window))
        self._lock = threading.Lock()

    def add(self, imager: str, quantity: str, value: float) -> None:
        with self._lock:
            self._values[(imager, quantity)].append(value)

    def score(self, imager: str, quantity: str) -> float:
        """PSI of the imager's recent values (NaN before any)."""
        with self._lock:
            values = list(self._values.get((imager, quantity), ()))
        return psi(histogram(values, quantity), self.reference[quantity]) if values else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write the stream client's drift reference from training minutes")
    parser.add_argument("folder", help="synthetic training minutes (stream0 + .mask.npz), e.g. data/train")
    parser.add_argument("-o", "--output", required=True, help="reference JSON")
    args = parser.parse_args(argv)
    Path(args.output).write_text(json.dumps(reference_from_minutes(args.folder), indent=1) + "\n")
    print(args.output)


if __name__ == "__main__":
    main()
