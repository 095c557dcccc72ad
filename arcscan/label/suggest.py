"""The model helps the person label: its probability map, and the patches worth a look.

Uncertainty sampling (Lewis & Gale 1994; Settles, "Active Learning Literature Survey", 2009):
the patches whose arc probability is nearest 0.5 are the ones a label teaches the model most,
so :func:`uncertain_patches` offers them, non-overlapping and away from existing labels.
:func:`disagreements` offers the person's own labels the model contradicts most confidently:
a slip of the mouse or a hard case, either way worth a second look. The probability is the
raster scan's (:class:`arcscan.core.segment.Segmenter`), per pixel of the frame: the
probability of the patch centred there.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter

from arcscan.core.segment import Segmenter
from arcscan.io.frames import Frame

MAX_CANDIDATES = 5000  # local minima of the uncertainty examined for the greedy pick
MIN_UNCERTAIN, MAX_UNCERTAIN = 0.05, 0.95  # a patch the model is surer of than this is no question


@dataclass(frozen=True)
class Suggestion:
    """A patch centre worth labelling (``kind`` "uncertain") or relabelling ("disagree", with
    the person's ``label`` there), with the model's arc probability."""

    kind: str
    x: int
    y: int
    probability: float
    label: str | None = None


def uncertain_patches(probability: np.ndarray, sky: np.ndarray, box: int, n: int, labelled: list[tuple[int, int]] = ()) -> list[Suggestion]:
    """Up to ``n`` centres in the sky with the probability nearest 0.5 (and within
    ``MIN_UNCERTAIN`` .. ``MAX_UNCERTAIN``), most uncertain first;
    no two of them overlap, and none lies within half a patch of a labelled centre
    (``labelled``: a patch shifted by less than that is nearly the same patch)."""
    open_question = sky & (probability > MIN_UNCERTAIN) & (probability < MAX_UNCERTAIN)
    uncertainty = np.where(open_question, np.abs(probability - 0.5), np.inf)
    local_minimum = (uncertainty == minimum_filter(uncertainty, size=max(1, box // 2))) & open_question
    ys, xs = np.nonzero(local_minimum)
    order = np.argsort(uncertainty[ys, xs], kind="stable")[:MAX_CANDIDATES]
    labelled = np.array(list(labelled), float).reshape(-1, 2)
    chosen: list[Suggestion] = []
    for x, y in zip(xs[order], ys[order]):
        if len(chosen) == n:
            break
        near_label = len(labelled) and (np.abs(labelled - (x, y)).max(axis=1) < box / 2).any()
        if near_label or any(max(abs(s.x - x), abs(s.y - y)) < box for s in chosen):
            continue
        chosen.append(Suggestion("uncertain", int(x), int(y), float(probability[y, x])))
    return chosen


def disagreements(probability: np.ndarray, labels: list[tuple[int, int, int]], n: int) -> list[Suggestion]:
    """Up to ``n`` of the labels (x, y, label 1/0) on the other side of 0.5 from the model's
    probability, the most confident contradiction first."""
    found = []
    for x, y, label in labels:
        p = float(probability[y, x])
        if (p < 0.5) if label == 1 else (p > 0.5):
            found.append(Suggestion("disagree", x, y, p, "arc" if label == 1 else "other"))
    return sorted(found, key=lambda s: -abs(s.probability - 0.5))[:n]


class ModelHelp:
    """A segmenter and the probability maps it made for recent frames (scans serialised: one
    model, shared by the server's threads)."""

    def __init__(self, segmenter: Segmenter, description: str, cached_frames: int = 16) -> None:
        self.segmenter, self.description = segmenter, description
        self._cached_frames = cached_frames
        self._lock = threading.Lock()
        self._maps: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def probability(self, key: tuple, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """(probability, sky mask) of a frame in its own pixels; ``key`` names the frame's
        version (file, mtime, size, index) for the cache."""
        with self._lock:
            if key not in self._maps:
                result = self.segmenter(frame)
                self._maps[key] = (result.probability, result.sky)
                while len(self._maps) > self._cached_frames:
                    self._maps.popitem(last=False)
            self._maps.move_to_end(key)
            return self._maps[key]
