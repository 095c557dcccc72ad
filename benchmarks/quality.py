"""Quality benchmark: PNU against PN, nnPU, a fully supervised bound and a no-learning
threshold, on held-out synthetic frames with pixel ground truth.

    python benchmarks/quality.py [--seeds 3] [--workers 2] [--resume] [--output reports/bench_quality.json]
    python benchmarks/quality.py --methods pn,nnpu,pnu_default --output reports/bench_quality_real.json
    python benchmarks/quality.py --quick --output /tmp/q.json   # proves the code runs (< 1 min)

Every learned method sees the same labelled patches (100 arc + 100 other from
``patches/train.npz``) and the same 3000 unlabeled patches, and everything else comes from
params.yaml (epochs, batches, lr, cosine schedule, positive_weight, scan stride, CRF). Methods:

- ``pn`` (eta = 0), ``nnpu`` (eta = 1), ``pnu_heuristic`` (Sakai et al.'s eta from the prior
  and the label counts), ``pnu_validated`` (eta picked from ``ETA_GRID`` by validation, below),
  ``pnu_default`` (the pipeline's eta from params.yaml);
- ``supervised``: the upper bound, PN risk on 2000 + 2000 patches picked from the ground truth
  of the training frames (:func:`arcscan.core.patches.pick_labels_from_truth`, the same kind of
  picks as the 100 + 100, twenty times more);
- sensitivity of the validated PNU to a wrong class prior (0.15; and 0.025, half the default,
  since 0.05 - 0.1 is not a prior) and, with PN beside it, to fewer labels (25 and 50 per class,
  nested subsets of the same 100 + 100);
- no learning: thresholds on the normalised image (:func:`unsupervised_mask`).

Validation (choosing eta) never touches the test set: pixel IoU after the CRF on the frames of
the first ``VALIDATION_NIGHTS`` training nights, scored by the seed-0 model of each grid value.
These nights also gave some of the labelled and unlabeled training patches, so the figure is
optimistic in absolute terms; it serves only to rank the etas, with the metric the pipeline
promotes on (``pixel_iou_crf``), which a held-out slice of 200 hand-picked patches could not
measure (and taking it out would change the labelled set every method shares).

``--methods`` trains only the named methods (the eta grid only when a method needs the validated
eta). Real frames (``data/real/valid``: imagers and scenes training never saw) are scored like
the synthetic test, plus arc-level detection (:class:`~arcscan.core.metrics.ArcDetection`: reference
arcs found, predicted arcs real) and the sky claimed on arc-free frames; the no-learning rules too.

Test: every frame of ``data/test`` (nights never used for training) is scanned once per model
(stride from params.yaml); the CRF runs on the cached probabilities. Pixel IoU and F1 pool the
pixel counts over frames inside the sky disc (as ``training/evaluate.py``); boundary F1 with a
2 px tolerance (:func:`boundary_counts`); patch ROC AUC on ``patches/test.npz``. Each method is
reported as mean, std, min and max over the training seeds. Models train in ``--workers``
processes of ``2 // workers`` torch threads. The default model ``models/model.pt`` is also run
over the real Gillam frames (no arcs) when ``../shared/data/themis_gill_20140310`` exists.

The report is rewritten after every finished model, so an interrupted run leaves a partial
report; ``--resume`` keeps its finished runs and trains only the missing ones (``wall_seconds``
is then this invocation's, earlier ones are listed under ``resumed_from``). Writes the JSON,
a markdown table (``.md``) and a plot (``.png``) side by side.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import binary_erosion, binary_opening, distance_transform_edt, gaussian_filter
from skimage.filters import threshold_otsu

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arcscan.config import Settings, load_settings  # noqa: E402
from arcscan.io.frames import Frame, read_frames  # noqa: E402
from arcscan.io.reference import references  # noqa: E402
from arcscan.core.metrics import ArcDetection, MaskAgreement, patch_metrics  # noqa: E402
from arcscan.core.model import ModelConfig, load_checkpoint  # noqa: E402
from arcscan.core.augment import AugmentConfig  # noqa: E402
from arcscan.core.geometry import SkyFinder, rescale  # noqa: E402
from arcscan.core.patches import NEGATIVE, POSITIVE, UNLABELED, PatchSet, patch_set, pick_labels_from_truth, unlabeled_set, view_of  # noqa: E402
from arcscan.core.preprocess import PreprocessConfig  # noqa: E402
from arcscan.core.progress import progress  # noqa: E402
from arcscan.core.segment import CRFConfig, ScanConfig, dense_crf, scan_logits  # noqa: E402
from arcscan.core.synth import mask_path, read_masks, write_minute  # noqa: E402
from arcscan.core.train import TrainConfig, predict_scores, train_pnu  # noqa: E402

ETA_GRID = (-0.5, 0.0, 0.25, 0.5, 0.75, 1.0)
WRONG_PRIORS = (0.15, 0.025)
FEW_LABELS = (25, 50)
SUPERVISED_PER_CLASS = 2000
VALIDATION_NIGHTS = 4
BOUNDARY_TOLERANCE_PX = 2
SUBSET_SEED = 123  # which labelled patches the 25/50-per-class subsets keep (nested)
SUPERVISED_SEED = 1  # which ground-truth picks the supervised bound trains on
GILLAM = ROOT.parent / "shared" / "data" / "themis_gill_20140310"


# --------------------------------------------------------------------------------------------
# Metrics


def boundary_counts(predicted: np.ndarray, truth: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE_PX) -> np.ndarray:
    """Boundary agreement of two masks, as counts to pool over frames.

    A mask's boundary is its pixels with a non-mask 8-neighbour (the mask minus its 3x3
    erosion). A predicted boundary pixel is matched when a true boundary pixel lies within
    ``tolerance`` px (Euclidean distance transform), and vice versa. Returns
    [matched predicted, predicted, matched true, true] boundary pixel counts; pooled
    precision = matched predicted / predicted, recall = matched true / true.
    """
    edges = [m & ~binary_erosion(m, structure=np.ones((3, 3), bool)) for m in (predicted, truth)]
    matched = []
    for own, other in (edges, edges[::-1]):
        near = distance_transform_edt(~other) <= tolerance if other.any() else np.zeros_like(other)
        matched.append(int((own & near).sum()))
    return np.array([matched[0], int(edges[0].sum()), matched[1], int(edges[1].sum())])


def boundary_f1(counts: np.ndarray) -> float:
    """F1 of pooled :func:`boundary_counts` (1.0 when neither mask has any boundary)."""
    matched_p, n_p, matched_t, n_t = counts
    if n_p == 0 and n_t == 0:
        return 1.0
    precision = matched_p / n_p if n_p else 0.0
    recall = matched_t / n_t if n_t else 0.0
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0


class MaskScores:
    """Pixel IoU/F1 (pooled, :class:`arcscan.core.metrics.MaskAgreement`), boundary F1 and, on
    frames with reference arc instances, arc-level detection (reference arcs found, predicted
    arcs real; regions of at least ``min_area`` model pixels, as the pipeline's objects)."""

    def __init__(self, min_area: int) -> None:
        self.pixels, self.boundary, self.arcs, self.min_area = MaskAgreement(), np.zeros(4, np.int64), ArcDetection(), min_area

    def add(self, predicted: np.ndarray, frame: "SkyFrame") -> None:
        self.pixels.add(predicted, frame.truth, frame.scored)
        self.boundary += boundary_counts(predicted & frame.scored, frame.truth & frame.scored)
        if frame.arcs is not None:
            self.arcs.add(predicted & frame.fov, frame.arcs, ~frame.scored, self.min_area)

    def result(self) -> dict[str, float]:
        scores = {"iou": self.pixels.iou(), "f1": self.pixels.f1(), "boundary_f1": boundary_f1(self.boundary)}
        if self.arcs.reference:
            scores |= {"arcs_found": self.arcs.found_share(), "arcs_real": self.arcs.real_share(), "reference_arcs": self.arcs.reference, "predicted_arcs": self.arcs.predicted}
        return scores


# --------------------------------------------------------------------------------------------
# Data


@dataclass
class SkyFrame:
    """A frame ready for scoring: normalised image, sky disc and ground-truth arc mask."""

    name: str
    image01: np.ndarray
    fov: np.ndarray  # the sky: scanned, and the CRF's
    truth: np.ndarray
    arcs: np.ndarray | None = None  # reference arc instances (real frames), for arc-level detection
    ignore: np.ndarray | None = None  # sky the reference leaves unscored (ambiguous arc edges; real frames)

    @property
    def scored(self) -> np.ndarray:
        """The pixels scored: the sky without the ignored ones."""
        return self.fov if self.ignore is None else self.fov & ~self.ignore


@dataclass
class Benchmark:
    """Everything a training run and its evaluation need (shared with worker processes)."""

    labelled: PatchSet  # the P and N patches every method shares
    unlabeled: PatchSet
    supervised: PatchSet | None  # the upper bound's P and N patches
    test_patches: PatchSet
    test_frames: list[SkyFrame]
    validation_frames: list[SkyFrame]
    validation_nights: int
    real_frames: list[SkyFrame]  # real arc frames of imagers training never saw, reference masks
    real_arc_free: list[SkyFrame]  # real frames without arcs (all of their scored sky is "no arc")
    train: TrainConfig
    model: ModelConfig
    scan: ScanConfig
    crf: CRFConfig
    augment: AugmentConfig
    min_area: int  # model pixels: the smallest predicted arc counted (objects.min_area)


def sky_frames(paths: list[Path], config: PreprocessConfig, find_sky: SkyFinder, limit: int | None = None) -> list[SkyFrame]:
    """The synthetic frames of stream0 files with their ``*.mask.npz`` ground truth, as the
    model sees them (their sky is the model's: scale 1)."""
    out = []
    for path in paths:
        for frame, truth in zip(read_frames(path), read_masks(mask_path(path))):
            view = view_of(frame, find_sky, config)
            out.append(SkyFrame(f"{path.name}#{frame.index}", view.model01, view.model_sky, truth))
    return out[:limit]


def real_sky_frames(folder: Path, settings: Settings, limit: int | None = None) -> tuple[list[SkyFrame], list[SkyFrame]]:
    """The real validation frames (``data/real/valid``) with their reference masks, as the
    model sees them (model scale; the whole sky scanned, ignored pixels left out of the scored
    sky, as in ``training/evaluate.py``): arc frames and arc-free frames. Empty when the folder
    is absent."""
    find_sky, arcs, arc_free = settings.sky_finder(), [], []
    for reference in references(folder):
        for frame in read_frames(reference.frames)[:limit]:
            view = view_of(frame, find_sky, settings.preprocess)
            ignore = view.model_sky & (rescale(reference.ignore[frame.index].astype(np.float32), view.scale) >= 0.5)
            native, instances = reference.arcs[frame.index], np.zeros(view.model01.shape, np.int32)
            for k in np.unique(native[native > 0]):  # each reference arc brought to the model's scale
                instances[rescale((native == k).astype(np.float32), view.scale) > 0.5] = k
            name = f"{reference.frames.name}#{frame.index}"
            (arcs if instances.any() else arc_free).append(SkyFrame(name, view.model01, view.model_sky, instances > 0, instances, ignore))
    return arcs, arc_free


def labelled_from_rows(rows: list[dict], frames: list[Frame], config: PreprocessConfig, size: int, find_sky: SkyFinder) -> PatchSet:
    """Patches of picked label rows (``file, frame, x, y, label``) cut from in-memory frames."""
    by_key = {(f.source, f.index): f for f in frames}
    sets = []
    for key in sorted({(r["file"], r["frame"]) for r in rows}):
        view = view_of(by_key[key], find_sky, config)
        for label in (POSITIVE, NEGATIVE):
            picks = [r for r in rows if (r["file"], r["frame"]) == key and r["label"] == label]
            if picks:
                sets.append(patch_set(view, [r["x"] for r in picks], [r["y"] for r in picks], size, label, key[0], key[1]))
    return PatchSet.concatenate(sets)


def frames_and_masks(paths: list[Path]) -> tuple[list[Frame], np.ndarray]:
    frames = [frame for path in paths for frame in read_frames(path)]
    masks = np.concatenate([read_masks(mask_path(path)) for path in paths])
    return frames, masks


def load_benchmark(data: Path, patches: Path, settings: Settings, supervised: bool) -> Benchmark:
    """The starter data set: patches/{train,test}.npz, data/test frames, data/train nights."""
    for needed in (patches / "train.npz", patches / "test.npz", data / "test", data / "train"):
        if not needed.exists():
            raise SystemExit(f"{needed} missing: run `make data` (or `dvc pull data.dvc`) and `python training/patches.py data patches`")
    preprocess, size, find_sky = settings.preprocess, settings.patches.size, settings.sky_finder()
    train_set = PatchSet.load(patches / "train.npz")
    train_paths = sorted((data / "train").glob("*.pgm*"))
    bound = None
    if supervised:
        frames, masks = frames_and_masks(train_paths)
        rows = pick_labels_from_truth(frames, masks, SUPERVISED_PER_CLASS, SUPERVISED_PER_CLASS, np.random.default_rng(SUPERVISED_SEED), preprocess, size, find_sky)
        bound = labelled_from_rows(rows, frames, preprocess, size, find_sky)
    return Benchmark(
        labelled=train_set.subset(train_set.labels != UNLABELED),
        unlabeled=train_set.subset(train_set.labels == UNLABELED),
        supervised=bound,
        test_patches=PatchSet.load(patches / "test.npz"),
        test_frames=sky_frames(sorted((data / "test").glob("*.pgm*")), preprocess, find_sky),
        validation_frames=sky_frames(train_paths[:VALIDATION_NIGHTS], preprocess, find_sky),
        validation_nights=VALIDATION_NIGHTS,
        **dict(zip(("real_frames", "real_arc_free"), real_sky_frames(data / "real" / "valid", settings))),
        **_configs(settings),
    )


def quick_benchmark(workdir: Path, settings: Settings) -> Benchmark:
    """A small synthetic data set made on the spot (works without ``data/``): 3 training
    nights, 1 validation night, 1 test night, 4 frames each; 1 epoch, 256 unlabeled patches."""
    preprocess, size, find_sky = settings.preprocess, settings.patches.size, settings.sky_finder()
    rng = np.random.default_rng(0)
    paths = [write_minute(workdir, seed, datetime(2030, 1, 1 + seed, 6), n_frames=4)[0] for seed in range(5)]
    train_paths, validation_paths, test_paths = paths[:3], paths[3:4], paths[4:]
    frames, masks = frames_and_masks(train_paths)
    labelled = labelled_from_rows(pick_labels_from_truth(frames, masks, 20, 20, rng, preprocess, size, find_sky), frames, preprocess, size, find_sky)
    test_frames, test_masks = frames_and_masks(test_paths)
    test_patches = labelled_from_rows(pick_labels_from_truth(test_frames, test_masks, 20, 20, rng, preprocess, size, find_sky), test_frames, preprocess, size, find_sky)
    configs = _configs(settings)
    configs["train"] = replace(configs["train"], epochs=1)
    return Benchmark(
        labelled=labelled,
        unlabeled=unlabeled_set(train_paths, 256, rng, preprocess, size, find_sky),
        supervised=None,
        test_patches=test_patches,
        test_frames=sky_frames(test_paths, preprocess, find_sky),
        validation_frames=sky_frames(validation_paths, preprocess, find_sky),
        validation_nights=len(validation_paths),
        **dict(zip(("real_frames", "real_arc_free"), real_sky_frames(ROOT / "data" / "real" / "valid", settings, limit=1))),
        **configs,
    )


def _configs(settings: Settings) -> dict:
    return {"train": settings.train, "augment": settings.augment, "model": settings.model, "scan": settings.scan, "crf": settings.crf, "min_area": settings.objects.min_area}


def label_subset(labelled: PatchSet, per_class: int) -> PatchSet:
    """``per_class`` arc and other patches of the labelled set; smaller subsets are nested in
    larger ones (one fixed permutation per class)."""
    if per_class >= min((labelled.labels == c).sum() for c in (POSITIVE, NEGATIVE)):
        return labelled
    rng = np.random.default_rng(SUBSET_SEED)
    keep = np.concatenate([rng.permutation(np.flatnonzero(labelled.labels == c))[:per_class] for c in (POSITIVE, NEGATIVE)])
    return labelled.subset(np.sort(keep))


# --------------------------------------------------------------------------------------------
# Training runs


@dataclass(frozen=True)
class RunSpec:
    """One training run: eta (number or "heuristic"), prior, labelled patches per class (None:
    all), seed; ``supervised`` swaps the labelled set for the upper bound's."""

    eta: float | str
    prior: float
    seed: int
    per_class: int | None = None
    supervised: bool = False

    @property
    def key(self) -> str:
        labels = "supervised" if self.supervised else f"n{self.per_class or 'all'}"
        return f"eta{self.eta}_prior{self.prior}_{labels}_seed{self.seed}"


_SHARED: Benchmark | None = None  # set in the parent before the worker processes fork


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run(spec: RunSpec) -> dict:
    """Train one model and score it: patch AUC, test masks before/after the CRF, validation."""
    bench = _SHARED
    labelled = bench.supervised if spec.supervised else label_subset(bench.labelled, spec.per_class or len(bench.labelled))
    patches = PatchSet.concatenate([labelled, bench.unlabeled])
    config = replace(bench.train, eta=spec.eta, prior=spec.prior, seed=spec.seed, threads=0)
    trained = train_pnu(patches, config, bench.model, bench.augment, show_progress=False)  # runs in parallel: one bar over the runs
    model = trained.model.to(memory_format=torch.channels_last)
    scores = predict_scores(model, bench.test_patches.images)
    record = {
        "key": spec.key,
        **asdict(spec),
        "eta_used": trained.eta,
        "n_positive": int((labelled.labels == POSITIVE).sum()),
        "n_negative": int((labelled.labels == NEGATIVE).sum()),
        "train_seconds": trained.seconds,
        "patch_roc_auc": patch_metrics(bench.test_patches.labels, scores)["roc_auc"],
        **score_frames(model, bench.test_frames, bench),
        "validation_iou_crf": score_frames(model, bench.validation_frames, bench)["crf"]["iou"],
        "real": score_frames(model, bench.real_frames, bench),
        "real_arcfree_claimed": claimed(model, bench.real_arc_free, bench),
    }
    return record


def segment_frame(model: torch.nn.Module, frame: SkyFrame, scan: ScanConfig, crf: CRFConfig) -> tuple[np.ndarray, np.ndarray]:
    """One scan of the frame: its arc probability map and the CRF mask of that map."""
    probability = 1.0 / (1.0 + np.exp(-scan_logits(model, frame.image01, frame.fov, scan)))
    return probability, dense_crf(probability, frame.image01, crf, frame.fov)


def claimed(model: torch.nn.Module, frames: list[SkyFrame], bench: Benchmark) -> float:
    """Mean share of the scored sky a model's CRF mask claims on arc-free frames."""
    shares = [float(segment_frame(model, frame, bench.scan, bench.crf)[1][frame.scored].mean()) for frame in frames]
    return float(np.mean(shares)) if shares else float("nan")


def score_frames(model: torch.nn.Module, frames: list[SkyFrame], bench: Benchmark) -> dict:
    """Scan each frame once; the scan mask (p > 0.5) and the CRF mask of the same map."""
    before, after = MaskScores(bench.min_area), MaskScores(bench.min_area)
    for frame in frames:
        probability, mask = segment_frame(model, frame, bench.scan, bench.crf)
        before.add(probability > 0.5, frame)
        after.add(mask, frame)
    return {"scan": before.result(), "crf": after.result()}


# --------------------------------------------------------------------------------------------
# The unsupervised baseline


def unsupervised_mask(image01: np.ndarray, fov: np.ndarray, rule: str) -> np.ndarray:
    """What a physicist tries first, no learning, inside the sky disc, then a 3x3 opening
    (drops stars, hot pixels and noise specks):

    - ``otsu``: Otsu's threshold on the normalised image;
    - ``otsu_bgsub``: Otsu on the image minus its smooth background (Gaussian, sigma 16 px,
      normalised by the disc so the rim is not darkened), which removes vignetting, moon
      glow and diffuse aurora wider than an arc;
    - ``p95_bgsub``: the brightest 5% (the default prior) of that background-subtracted image.
    """
    image = image01
    if rule.endswith("_bgsub"):
        weight = gaussian_filter(fov.astype(np.float32), 16)
        image = image01 - gaussian_filter(image01 * fov, 16) / np.maximum(weight, 1e-6)
    sky = image[fov]
    threshold = threshold_otsu(sky) if rule.startswith("otsu") else np.percentile(sky, 95)
    return binary_opening((image > threshold) & fov, structure=np.ones((3, 3), bool))


UNSUPERVISED_RULES = ("otsu", "otsu_bgsub", "p95_bgsub")
REAL_METRICS = ("iou", "f1", "arcs_found", "arcs_real")


def unsupervised_scores(frames: list[SkyFrame], min_area: int, arc_free: list[SkyFrame] = ()) -> dict[str, dict]:
    """Each rule's pooled scores on ``frames`` and, with ``arc_free`` frames, the mean share
    of their sky it claims."""
    out = {}
    for rule in UNSUPERVISED_RULES:
        scores = MaskScores(min_area)
        for frame in frames:
            scores.add(unsupervised_mask(frame.image01, frame.fov, rule), frame)
        out[rule] = scores.result()
        if arc_free:
            out[rule]["arcfree_claimed"] = float(np.mean([unsupervised_mask(f.image01, f.fov, rule)[f.scored].mean() for f in arc_free]))
    return out


# --------------------------------------------------------------------------------------------
# The plan, the report


def _stats(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, float)
    return {"mean": float(array.mean()), "std": float(array.std()), "min": float(array.min()), "max": float(array.max()), "n": len(array)}


def summarise(records: list[dict]) -> dict:
    """Mean, std, min and max over seeds of every metric of one method's runs."""
    return {
        "runs": len(records),
        "seeds": sorted(r["seed"] for r in records),
        "eta": records[0]["eta_used"],
        "patch_roc_auc": _stats([r["patch_roc_auc"] for r in records]),
        **{stage: {m: _stats([r[stage][m] for r in records]) for m in ("iou", "f1", "boundary_f1")} for stage in ("scan", "crf")},
        "real": {stage: {m: _stats([r["real"][stage][m] for r in records]) for m in REAL_METRICS if m in records[0]["real"][stage]} for stage in ("scan", "crf")} if all("real" in r for r in records) else None,
        "real_arcfree_claimed": _stats([r["real_arcfree_claimed"] for r in records]) if all("real_arcfree_claimed" in r for r in records) else None,
    }


class Plan:
    """Which runs make which method, in the order they are trained (most important first)."""

    def __init__(self, prior: float, seeds: int, quick: bool, default_eta: float | str, selected: list[str] | None = None) -> None:
        self.prior, self.seeds, self.default_eta = prior, list(range(seeds)), default_eta
        self.eta_grid = (0.0, 1.0) if quick else ETA_GRID
        self.quick = quick
        self.selected = selected  # method names to run (None: all)
        self.best_eta: float | None = None

    @property
    def needs_validation(self) -> bool:
        """Whether a selected method trains with the validated eta."""
        return self.selected is None or any(n == "pnu_validated" or n.startswith("pnu_sens") for n in self.selected)

    @property
    def ready(self) -> bool:
        """Whether the methods' runs are known (after the validation, when one is needed)."""
        return self.best_eta is not None or not self.needs_validation

    def validation_runs(self) -> list[RunSpec]:
        if not self.needs_validation:
            return []
        extra = [] if self.quick else [RunSpec("heuristic", self.prior, 0), RunSpec(0.0, self.prior, 0, supervised=True)]
        return [RunSpec(eta, self.prior, 0) for eta in self.eta_grid] + extra

    def sensitivity_eta(self) -> float | str:
        """The validated eta, unless it is PN (eta 0), whose balanced risk ignores the prior:
        then the heuristic PNU carries the prior and label-count sensitivity."""
        return "heuristic" if self.best_eta == 0.0 else self.best_eta

    def methods(self) -> dict[str, list[RunSpec]]:
        """Every method's runs, or the selected ones'."""
        methods = self.all_methods()
        return methods if self.selected is None else {name: methods[name] for name in self.selected}

    def all_methods(self) -> dict[str, list[RunSpec]]:
        prior, seeds, best = self.prior, self.seeds, self.best_eta
        methods = {"pn": [RunSpec(0.0, prior, s) for s in seeds], "nnpu": [RunSpec(1.0, prior, s) for s in seeds], "pnu_validated": [RunSpec(best, prior, s) for s in seeds]}
        if self.quick:
            return methods
        sens = self.sensitivity_eta()
        methods |= {
            "pnu_heuristic": [RunSpec("heuristic", prior, s) for s in seeds],
            "pnu_default": [RunSpec(self.default_eta, prior, s) for s in seeds],
            "supervised": [RunSpec(0.0, prior, s, supervised=True) for s in seeds],
        }
        for wrong in WRONG_PRIORS:
            methods[f"pnu_sens_prior{wrong}"] = [RunSpec(sens, wrong, s) for s in seeds]
        for count in FEW_LABELS:
            methods[f"pn_{count}_per_class"] = [RunSpec(0.0, prior, s, count) for s in seeds]
            methods[f"pnu_sens_{count}_per_class"] = [RunSpec(sens, prior, s, count) for s in seeds]
        return methods


def describe(name: str, plan: Plan) -> str:
    sens = plan.sensitivity_eta()
    sens_text = "heuristic eta" if sens == "heuristic" else f"eta {sens}"
    fixed = {
        "pn": "PN (eta 0), 100 + 100 labels",
        "nnpu": "nnPU (eta 1), 100 + 100 labels",
        "pnu_heuristic": "PNU, heuristic eta (Sakai et al.)",
        "pnu_default": f"PNU, the pipeline's eta = {plan.default_eta} (params.yaml)",
        "pnu_validated": f"PNU, validated eta = {plan.best_eta}" + {0.0: " (= the PN runs)", 1.0: " (= the nnPU runs)"}.get(plan.best_eta, ""),
        "supervised": f"supervised bound: PN on {SUPERVISED_PER_CLASS} + {SUPERVISED_PER_CLASS} labels",
    }
    if name in fixed:
        return fixed[name]
    if name.startswith("pnu_sens_prior"):
        return f"PNU ({sens_text}), wrong prior {name.removeprefix('pnu_sens_prior')}"
    count = name.split("_")[-3]
    return f"PN, {count} + {count} labels" if name.startswith("pn_") else f"PNU ({sens_text}), {count} + {count} labels"


def build_report(plan: Plan, records: dict[str, dict], bench: Benchmark, extras: dict) -> dict:
    """The JSON report from the finished runs (methods with no finished run are left out and
    listed under ``missing``)."""
    methods, missing = {}, []
    for name, specs in plan.methods().items() if plan.ready else []:
        done = [records[s.key] for s in specs if s.key in records]
        if done:
            methods[name] = {"description": describe(name, plan), **summarise(done)}
        missing += [s.key for s in specs if s.key not in records]
    validation = {str(s.eta): records[s.key]["validation_iou_crf"] for s in plan.validation_runs() if s.key in records and s.eta in plan.eta_grid and not s.supervised}
    unlabeled_truth = bench.unlabeled.truth[bench.unlabeled.truth >= 0]
    return {
        **extras,
        "settings": {
            "train": asdict(bench.train),
            "scan": asdict(bench.scan),
            "crf": asdict(bench.crf),
            "seeds": plan.seeds,
            "labelled_per_class": int((bench.labelled.labels == POSITIVE).sum()),
            "unlabeled": len(bench.unlabeled),
            "unlabeled_true_prior": float(unlabeled_truth.mean()) if len(unlabeled_truth) else None,
            "test_frames": len(bench.test_frames),
            "test_patches": len(bench.test_patches),
            "boundary_tolerance_px": BOUNDARY_TOLERANCE_PX,
        },
        "validation": {
            "split": f"pixel ground truth of the {len(bench.validation_frames)} frames of {bench.validation_nights} training nights (never the test nights); metric: pixel IoU after the CRF; seed-0 model per eta",
            "iou_crf_by_eta": validation,
            "best_eta": plan.best_eta,
        },
        "methods": methods,
        "missing_runs": missing,
        "runs": sorted(records.values(), key=lambda r: r["key"]),
    }


def _cell(stat: dict | None) -> str:
    if stat is None:
        return "–"
    spread = f" ± {stat['std']:.3f}" if stat["n"] > 1 else ""
    return f"{stat['mean']:.3f}{spread}"


def markdown(report: dict) -> str:
    """The tables of the report: learned methods (mean ± std over seeds), unsupervised rules,
    the validation of eta and the real Gillam frames."""
    machine = report["machine"]
    earlier = sum(r.get("wall_seconds", 0.0) for r in report["resumed_from"])
    lines = [
        f"`{report['command']}` on {machine['cpus']} CPU cores ({machine['processor']}), {machine['workers']} training processes x "
        f"{machine['torch_threads_per_worker']} torch thread(s); wall time {report.get('wall_seconds', 0.0) / 60:.1f} min"
        + (f" (+ {earlier / 60:.1f} min in {len(report['resumed_from'])} earlier invocation(s) resumed)" if report["resumed_from"] else "")
        + f". Test: {report['settings']['test_frames']} held-out frames, {report['settings']['test_patches']} held-out labelled patches; mean ± std over seeds (min–max in the JSON).",
        "",
        "| method | runs | patch ROC AUC | pixel IoU, no CRF | pixel IoU, CRF | pixel F1, no CRF | pixel F1, CRF | boundary F1, no CRF | boundary F1, CRF |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in report["methods"].items():
        cells = [m["patch_roc_auc"], m["scan"]["iou"], m["crf"]["iou"], m["scan"]["f1"], m["crf"]["f1"], m["scan"]["boundary_f1"], m["crf"]["boundary_f1"]]
        lines.append(f"| {m['description']} (`{name}`) | {m['runs']} | " + " | ".join(_cell(c) for c in cells) + " |")
    for rule, r in report["unsupervised"].items():
        lines.append(f"| no learning: `{rule}` | – | – | {r['iou']:.3f} | – | {r['f1']:.3f} | – | {r['boundary_f1']:.3f} | – |")
    real = [(name, m) for name, m in report["methods"].items() if m.get("real")]
    if real:
        frames = report["real_frames"]
        lines += [
            "",
            f"Real frames (imagers and scenes training never saw; reference masks, ignored pixels not scored; model scale): "
            f"{len(frames['arc_frames'])} arc frames ({', '.join(frames['arc_frames'])}), {frames['arc_free_frames']} arc-free frames.",
            "",
            "| method | real pixel IoU, no CRF | real pixel IoU, CRF | real pixel F1, CRF | reference arcs found, CRF | predicted arcs real, CRF | sky claimed on arc-free frames |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, m in real:
            crf = m["real"]["crf"]
            lines.append(f"| `{name}` | {_cell(m['real']['scan']['iou'])} | {_cell(crf['iou'])} | {_cell(crf['f1'])} | {_cell(crf.get('arcs_found'))} | {_cell(crf.get('arcs_real'))} | {_cell(m['real_arcfree_claimed'])} |")
        for rule, r in report["unsupervised_real"].items():
            arcs = f"{r['arcs_found']:.3f} (no CRF) | {r['arcs_real']:.3f} (no CRF)" if "arcs_found" in r else "– | –"
            lines.append(f"| no learning: `{rule}` | {r['iou']:.3f} | – | {r['f1']:.3f} (no CRF) | {arcs} | {r.get('arcfree_claimed', float('nan')):.4f} |")
    validation = report["validation"]
    if validation["iou_crf_by_eta"]:
        lines += ["", f"Validation ({validation['split']}): " + ", ".join(f"eta {k}: {v:.3f}" for k, v in validation["iou_crf_by_eta"].items()) + f"; best eta {validation['best_eta']}."]
    if "gillam" in report:
        gillam = report["gillam"]
        lines.append("")
        if "skipped" in gillam:
            lines.append(f"Real Gillam frames (no arcs): skipped, {gillam['skipped']}.")
        else:
            rules = ", ".join(f"`{rule}` mean {v['mean']:.4f}, max {v['max']:.4f}" for rule, v in gillam["unsupervised_arc_fraction"].items())
            lines.append(
                f"Real Gillam frames (no arcs, {gillam['frames']} frames), arc fraction of the sky disc claimed by the default model `{gillam['model']}`: "
                f"mean {gillam['arc_fraction_mean']:.4f}, max {gillam['arc_fraction_max']:.4f} after the CRF; scan only: mean {gillam['arc_fraction_scan_mean']:.4f}, "
                f"max {gillam['arc_fraction_scan_max']:.4f}. No learning: {rules}."
            )
    if report["missing_runs"]:
        lines += ["", f"**Partial**: {len(report['missing_runs'])} runs missing: " + ", ".join(report["missing_runs"])]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    """Pixel IoU and boundary F1 per method, scan vs CRF; bars at the mean, whiskers min–max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["methods"]) + [f"{r} (no learning)" for r in report["unsupervised"]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.42 * len(names) + 1.6), sharey=True)
    y = np.arange(len(names))
    for ax, metric, title in zip(axes, ("iou", "boundary_f1"), ("pixel IoU", f"boundary F1 ({BOUNDARY_TOLERANCE_PX} px)")):
        for offset, stage, colour in ((-0.2, "scan", "tab:gray"), (0.2, "crf", "tab:blue")):
            stats = [m[stage][metric] for m in report["methods"].values()] + [{"mean": r[metric], "min": r[metric], "max": r[metric]} if stage == "scan" else None for r in report["unsupervised"].values()]
            means = np.array([s["mean"] if s else np.nan for s in stats])
            low = np.array([s["mean"] - s["min"] if s else 0 for s in stats])
            high = np.array([s["max"] - s["mean"] if s else 0 for s in stats])
            ax.barh(y + offset, means, height=0.38, color=colour, xerr=[low, high], capsize=2, label="no CRF" if stage == "scan" else "after the CRF")
        ax.set_title(title)
        ax.set_xlim(0, 1)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    axes[0].legend(loc="lower right")
    fig.suptitle(f"held-out synthetic test frames; bars: mean over seeds, whiskers: min–max{' (quick)' if report.get('quick') else ''}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gillam_fractions(checkpoint: Path, settings: Settings, limit: int | None) -> dict:
    """Arc fraction the default model claims on the real Gillam frames (moonlit, no arcs)."""
    if not GILLAM.is_dir():
        return {"skipped": f"{GILLAM} not present"}
    if not checkpoint.is_file():
        return {"skipped": f"{checkpoint} not found (make train)"}
    segmenter = settings.segmenter(load_checkpoint(checkpoint))
    frames = [frame for path in sorted(GILLAM.glob("*.pgm*")) for frame in read_frames(path)][:limit]
    results = [segmenter(frame) for frame in frames]
    scan = [float(r.mask_scan.sum() / r.sky.sum()) for r in results]
    crf = [r.arc_fraction for r in results]
    unsupervised = {rule: [float(unsupervised_mask(r.image01, r.sky, rule).sum() / r.sky.sum()) for r in results] for rule in UNSUPERVISED_RULES}
    return {
        "model": str(checkpoint.relative_to(ROOT)) if checkpoint.is_relative_to(ROOT) else str(checkpoint),
        "frames": len(frames),
        "arc_fraction_mean": float(np.mean(crf)),
        "arc_fraction_max": float(np.max(crf)),
        "arc_fraction_scan_mean": float(np.mean(scan)),
        "arc_fraction_scan_max": float(np.max(scan)),
        "unsupervised_arc_fraction": {rule: {"mean": float(np.mean(v)), "max": float(np.max(v))} for rule, v in unsupervised.items()},
    }


def write_report(report: dict, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    output.with_suffix(".md").write_text(markdown(report))
    if report["methods"]:
        plot(report, output.with_suffix(".png"))


def main() -> None:
    global _SHARED
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per method")
    parser.add_argument("--workers", type=int, default=2, help="training processes, each with 2 // workers torch threads (at least 1)")
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, small synthetic data made in a temporary folder, 2 methods")
    parser.add_argument("--resume", action="store_true", help="keep the finished runs of an existing --output and train only the missing ones")
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "models" / "model.pt", help="the default model, for the real Gillam frames")
    parser.add_argument("--methods", type=lambda text: text.split(","), help="comma-separated methods to run (default: all); the eta grid is trained only when one needs the validated eta")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "bench_quality.json")
    args = parser.parse_args()
    start = time.perf_counter()

    settings = load_settings(ROOT / "params.yaml")
    total_threads = settings.train.threads
    threads = max(1, total_threads // args.workers)
    prior = float(settings.train.prior)
    plan = Plan(prior, 1 if args.quick else args.seeds, args.quick, settings.train.eta, args.methods)
    unknown = set(args.methods or ()) - set(plan.all_methods())
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; known: {', '.join(plan.all_methods())}")
    supervised = "supervised" in plan.methods() or plan.needs_validation  # the bound also trains with the validation runs
    with tempfile.TemporaryDirectory() as workdir:
        _SHARED = quick_benchmark(Path(workdir), settings) if args.quick else load_benchmark(ROOT / "data", ROOT / "patches", settings, supervised=supervised)
    records: dict[str, dict] = {}
    previous: dict = {}
    if args.resume and args.output.is_file():
        previous = json.loads(args.output.read_text())
        records = {r["key"]: r for r in previous["runs"]}
    extras = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "resumed_from": [*previous.get("resumed_from", []), {k: previous[k] for k in ("command", "started", "wall_seconds") if k in previous}] if previous else [],
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(), "workers": args.workers, "torch_threads_per_worker": threads},
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "unsupervised": unsupervised_scores(_SHARED.test_frames, _SHARED.min_area),
        "unsupervised_real": unsupervised_scores(_SHARED.real_frames, _SHARED.min_area, _SHARED.real_arc_free),
        "real_frames": {"arc_frames": [f.name for f in _SHARED.real_frames], "arc_free_frames": len(_SHARED.real_arc_free)},
    }

    def finish(spec_list: list[RunSpec], pool: ProcessPoolExecutor) -> None:
        futures = {pool.submit(run, s): s for s in dict.fromkeys(spec_list) if s.key not in records}
        bar = progress(as_completed(futures), desc="models", total=len(futures), unit="model")
        for future in bar:
            record = future.result()
            records[record["key"]] = record
            bar.write(
                f"{record['key']}: AUC {record['patch_roc_auc']:.3f}, IoU scan {record['scan']['iou']:.3f} / CRF {record['crf']['iou']:.3f}, "
                f"validation {record['validation_iou_crf']:.3f}, real IoU CRF {record['real']['crf']['iou']:.3f}, {record['train_seconds']:.0f} s"
            )
            extras["wall_seconds"] = time.perf_counter() - start
            write_report(build_report(plan, records, _SHARED, extras), args.output)

    context = multiprocessing.get_context("fork")  # workers inherit the loaded data
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        if plan.needs_validation:
            finish(plan.validation_runs(), pool)
            grid = {s.eta: records[s.key]["validation_iou_crf"] for s in plan.validation_runs() if not s.supervised and s.eta != "heuristic"}
            plan.best_eta = max(grid, key=grid.get)
            print(f"validated eta: {plan.best_eta} ({grid})", flush=True)
        finish([spec for specs in plan.methods().values() for spec in specs], pool)

    torch.set_num_threads(total_threads)
    extras["gillam"] = gillam_fractions(args.checkpoint, settings, 8 if args.quick else None)
    extras["wall_seconds"] = time.perf_counter() - start
    report = build_report(plan, records, _SHARED, extras)
    write_report(report, args.output)
    print(markdown(report))


if __name__ == "__main__":
    main()
