"""How the synthetic starter frames differ from real all-sky frames, in numbers.

Usage::

    python benchmarks/synth_vs_real.py [--train data/train] [--real ../shared/data]
                                       [--out reports] [--generated 30]

Every frame is seen the way the model sees it: the sky from ``params.yaml`` (imager profiles,
else estimated from the frame; an elevation map missing from ``data/real/cal`` is taken from
the real-data folder), then :func:`arcscan.core.preprocess.model_view` (counts to [0, 1]
within the sky, resampled to a sky radius of 112 px). On ``model01`` inside ``model_sky`` it
measures, per frame:

1. **intensity**: the 5/25/50/75/95th percentiles and the fractions of sky pixels clipped to
   0 and to 1;
2. **noise**: the robust sigma (1.4826 x MAD) of the image minus its 3 x 3 median (calibrated
   so that white noise reads its sigma) in [0, 1] units, relative to the sky's median, and in
   counts (the stretch undone) relative to the sky's median level above the dark;
3. **stars**: point sources per 10^4 sky pixels: local maxima of a difference of Gaussians
   (sigma 1 and 3 px) above 5 of its robust sigmas whose half-maximum blob fits in 3 x 3 px
   (6 x 6 px for a star clipped at 1);
4. **large-scale structure**: the median in 8 equal-width rings from the zenith to the edge
   of the sky (10 degrees of zenith angle each for an equidistant fisheye);
5. **arcs**: on synthetic frames from the truth masks; on synthetic and real arc frames
   (DASC, OATH) from :func:`approximate_arcs` (see there): arc width (area / skeleton length
   of each arc, px), contrast (median on the arc minus the median of the sky within 10 px
   around it), tilt from the image rows and spread of the local orientation along the arcs.

Groups: the synthetic training frames (all, with arcs, without), each real imager, and
frames generated on the spot with ``generate_minute`` (``--generated`` per scene: clear sky,
moonlit overcast, the defaults and the proposed settings on the same seeds). Each statistic
is summarised per group (median over frames, 10th-90th percentile) into
``reports/synth_vs_real.json`` and ``reports/synth_vs_real.md``, with a section on what to
change in :mod:`arcscan.core.synth`. Absent folders are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.morphology import disk, skeletonize

from arcscan.config import load_settings
from arcscan.core.geometry import SkyFinder, to_shape
from arcscan.core.preprocess import ModelView, PreprocessConfig, dark_level, model_view, normalize
from arcscan.core.synth import SceneConfig, generate_minute, mask_path, read_masks
from arcscan.errors import InputError
from arcscan.io.frames import Frame, read_frames

ROOT = Path(__file__).resolve().parents[1]
MAD_TO_SIGMA = 1.4826
MEDIAN3_RESIDUAL = 0.8630  # 1.4826 x MAD of (x - 3x3 median of x) for white Gaussian x of sigma 1
N_RINGS = 8
STAR_THRESHOLD = 5.0  # robust sigmas of the difference of Gaussians
STAR_MAX_SIZE = 3  # px: the half-maximum blob of a star fits in a box this size ...
STAR_MAX_SIZE_CLIPPED = 6  # px: ... or this size when its peak is clipped at 1 (flat-topped)
DOG_SIGMAS = (1.0, 3.0)  # px
SURROUND_PX = 10  # px around an arc taken as its surroundings
MIN_ARC_AREA = 20  # px: smaller truth or detected components are not counted as arcs
ARC_CENTRE = 0.8  # the approximate arc finder looks within this fraction of the sky radius
ARC_BACKGROUND_PX = 10  # px: radius of the disc of the grey opening that estimates the background
ARC_SEED_SIGMAS = 6.0  # seeds: background-subtracted image above this many noise sigmas ...
ARC_SEED_LEVEL = 0.1  # ... and above this level ([0, 1] units)
ARC_ELONGATION = 3.0  # a detected arc is at least this many times longer than wide

# (group, folder under the real-data root, file pattern, has discrete arcs)
REAL_GROUPS = (
    ("themis-gill", "themis_gill_20140310", "*.pgm*", False),
    ("themis-gako", "themis_gako_20110106", "*.cdf", False),
    ("dasc-pkr", "dasc_pkr_20151007", "*.FITS", True),
    ("oath", "oath_sample", "*.png", True),
    ("trex-rgb", "trex_rgb_gill", "*.png", False),
)


@dataclass
class Group:
    """Frames of one imager (or the synthetic set); ``truth`` holds one mask per frame or None."""

    name: str
    has_arcs: bool
    frames: list[Frame] = field(default_factory=list)
    truth: list[np.ndarray | None] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Reading


def sky_finder(params: Path, real_root: Path) -> SkyFinder:
    """The sky finder of ``params``; elevation maps it names but that are missing are looked
    up by file name under ``real_root`` (the shared data carries the calibrations)."""
    finder = load_settings(params).sky_finder()
    profiles = []
    for profile in finder.config.imagers:
        if profile.elevation is not None:
            path = Path(profile.elevation)
            path = path if path.is_absolute() else Path(finder.config.base_dir) / path
            if not path.is_file():
                found = sorted(real_root.rglob(path.name)) if real_root.is_dir() else []
                if found:
                    print(f"note: {path} missing, using {found[0]} for imager profile {profile.name!r}")
                    profile = replace(profile, elevation=str(found[0]))
        profiles.append(profile)
    return SkyFinder(replace(finder.config, imagers=tuple(profiles)))


def load_synthetic(train_dir: Path) -> Group:
    """The synthetic training frames and their truth masks (``*.mask.npz`` beside them)."""
    group = Group("synthetic", True)
    files = sorted(train_dir.glob("*.pgm.gz")) if train_dir.is_dir() else []
    if not files:
        print(f"note: no synthetic frames in {train_dir} (run `dvc pull data.dvc`); skipped")
    for path in files:
        frames = read_frames(path)
        masks = read_masks(mask_path(path)) if mask_path(path).is_file() else [None] * len(frames)
        group.frames += frames
        group.truth += list(masks)
        group.files.append(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))
    return group


def load_real(real_root: Path) -> list[Group]:
    """The real frames, one group per imager; absent folders are skipped with a note."""
    groups = []
    for name, folder, pattern, has_arcs in REAL_GROUPS:
        files = sorted((real_root / folder).glob(pattern))
        if not files:
            print(f"note: {real_root / folder} absent or empty; {name} skipped")
            continue
        group = Group(name, has_arcs)
        for path in files:
            frames = read_frames(path)
            group.frames += frames
            group.truth += [None] * len(frames)
            group.files.append(str(path))
        groups.append(group)
    return groups


# --------------------------------------------------------------------------------------------
# Statistics on one model-scale image (``image`` float [0, 1], ``sky`` bool, same shape)


def robust_sigma(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation from the median."""
    values = np.asarray(values, dtype=float)
    return float(MAD_TO_SIGMA * np.median(np.abs(values - np.median(values)))) if values.size else float("nan")


def interior(sky: np.ndarray, margin: int) -> np.ndarray:
    """The sky eroded by ``margin`` px, so that filters do not see the rim."""
    return ndimage.binary_erosion(sky, disk(margin)) if margin > 0 else sky


def intensity_stats(image: np.ndarray, sky: np.ndarray) -> dict[str, float]:
    """Percentiles 5/25/50/75/95 of the sky and the fractions clipped to 0 and to 1."""
    values = image[sky]
    stats = {f"q{q:02d}": float(v) for q, v in zip((5, 25, 50, 75, 95), np.percentile(values, [5, 25, 50, 75, 95]))}
    stats["at_0"] = float(np.mean(values <= 1e-6))
    stats["at_1"] = float(np.mean(values >= 1 - 1e-6))
    return stats


def noise_sigma(image: np.ndarray, sky: np.ndarray) -> float:
    """Robust sigma (1.4826 x MAD) of the image minus its 3 x 3 median over the sky (2 px in
    from the rim), divided by 0.863 so that white Gaussian noise reads its own sigma (the
    residual is zero whenever the centre pixel is the median, which shrinks its MAD)."""
    residual = image - ndimage.median_filter(image, size=3, mode="nearest")
    return robust_sigma(residual[interior(sky, 2)]) / MEDIAN3_RESIDUAL


@dataclass(frozen=True)
class Stars:
    """Point sources found in a sky: their positions (row, col), how many, the sky area
    searched (px) and the count per 10^4 of those pixels."""

    positions: np.ndarray
    count: int
    area: int

    @property
    def per_1e4(self) -> float:
        return 1e4 * self.count / max(self.area, 1)


def find_stars(image: np.ndarray, sky: np.ndarray) -> Stars:
    """Local maxima (5 x 5) of the difference of Gaussians (sigma 1 and 3 px) above 5 of its
    robust sigmas (over the sky) whose blob, where the image exceeds its 7 x 7 median by half
    the peak's excess, fits in a 3 x 3 px box. A bright star clipped at 1 is flat-topped and
    its half-maximum blob wider than its PSF: it may fill 6 x 6 px (the moon, cloud edges and
    arcs are larger). Searched 6 px in from the rim."""
    small, large = DOG_SIGMAS
    dog = ndimage.gaussian_filter(image, small) - ndimage.gaussian_filter(image, large)
    inner = interior(sky, 6)
    if inner.sum() < 100:
        return Stars(np.zeros((0, 2), int), 0, int(inner.sum()))
    level = np.median(dog[inner]) + STAR_THRESHOLD * robust_sigma(dog[inner])
    peaks = (dog == ndimage.maximum_filter(dog, size=5)) & (dog > level) & inner
    excess = image - ndimage.median_filter(image, size=7, mode="nearest")
    keep = []
    half = STAR_MAX_SIZE_CLIPPED + 1  # window half-size: a blob bigger than the box reaches its edge
    for row, col in np.argwhere(peaks):
        r0, c0 = max(row - half, 0), max(col - half, 0)
        window = excess[r0 : row + half + 1, c0 : col + half + 1]
        peak = window[row - r0, col - c0]
        if peak <= 0:
            continue
        blobs, _ = ndimage.label(window >= 0.5 * peak)
        rows, cols = np.nonzero(blobs == blobs[row - r0, col - c0])
        size = STAR_MAX_SIZE_CLIPPED if image[row, col] >= 1 - 1e-6 else STAR_MAX_SIZE
        if np.ptp(rows) < size and np.ptp(cols) < size:
            keep.append((row, col))
    return Stars(np.array(keep, int).reshape(-1, 2), len(keep), int(inner.sum()))


def radial_profile(image: np.ndarray, sky: np.ndarray, centre: tuple[float, float], radius: float, n_rings: int = N_RINGS) -> np.ndarray:
    """Median of the sky in ``n_rings`` equal-width rings from ``centre`` (x, y) out to
    ``radius`` (the last ring takes any sky beyond it); NaN for an empty ring."""
    rows, cols = np.indices(image.shape)
    ring = np.minimum((np.hypot(cols - centre[0], rows - centre[1]) / radius * n_rings).astype(int), n_rings - 1)
    return np.array([np.median(image[sky & (ring == k)]) if np.any(sky & (ring == k)) else np.nan for k in range(n_rings)])


@dataclass(frozen=True)
class Arcs:
    """Per arc (connected component): width (area / length of its skeleton, px), contrast
    (median on the arc minus the median of the sky within 10 px of it, other arcs left out)
    and the local orientations along its skeleton (degrees from the image's x axis, 0..180)."""

    widths: np.ndarray
    contrasts: np.ndarray
    orientations: list[np.ndarray]

    @property
    def count(self) -> int:
        return len(self.widths)


def local_orientation(mask: np.ndarray) -> np.ndarray:
    """Direction (degrees from the x axis, counter-clockwise with y up, 0..180) along which a
    band of ``mask`` runs at each pixel, from the structure tensor of the smoothed mask."""
    smooth = ndimage.gaussian_filter(mask.astype(float), 1.5)
    gy, gx = np.gradient(smooth)
    jxx, jyy, jxy = (ndimage.gaussian_filter(g, 3.0) for g in (gx * gx, gy * gy, gx * gy))
    across = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # gradient direction, rows down
    return np.degrees(-(across + np.pi / 2)) % 180.0  # along the band, y up


def skeleton_length(skeleton: np.ndarray) -> float:
    """Length (px) of a one-pixel-wide skeleton: 1 per orthogonal link, sqrt(2) per diagonal
    link that no orthogonal pair already bridges (at most 8% long for straight lines)."""
    s = np.pad(skeleton.astype(bool), 1)
    core = s[1:-1, 1:-1]
    right, down = s[1:-1, 2:], s[2:, 1:-1]
    orthogonal = np.sum(core & right) + np.sum(core & down)
    diagonal = np.sum(core & s[2:, 2:] & ~right & ~down) + np.sum(core & s[2:, :-2] & ~s[1:-1, :-2] & ~down)
    return float(orthogonal + np.sqrt(2.0) * diagonal)


def arc_stats(image: np.ndarray, sky: np.ndarray, mask: np.ndarray) -> Arcs:
    """Width, contrast and orientations of the arcs in ``mask`` (components of at least
    20 px, 8-connected, within the sky). A skeleton pixel counts for 1 / max(|cos|, |sin|)
    px of length along its local direction, so diagonal arcs are not made wider."""
    labels, n = ndimage.label(mask & sky, structure=np.ones((3, 3)))
    if n == 0:
        return Arcs(np.zeros(0), np.zeros(0), [])
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    arcs = np.isin(labels, 1 + np.flatnonzero(areas >= MIN_ARC_AREA))
    around = ndimage.binary_dilation(arcs, disk(SURROUND_PX)) & ~(mask | arcs) & sky
    skeleton = skeletonize(arcs)
    orientation = local_orientation(arcs)
    step = 1.0 / np.maximum(np.abs(np.cos(np.radians(orientation))), np.abs(np.sin(np.radians(orientation))))
    widths, contrasts, orientations = [], [], []
    for index in 1 + np.flatnonzero(areas >= MIN_ARC_AREA):
        arc = labels == index
        bones = skeleton & arc
        near = around & ndimage.binary_dilation(arc, disk(SURROUND_PX))
        if bones.sum() < 3 or near.sum() < 10:
            continue
        widths.append(arc.sum() / step[bones].sum())
        contrasts.append(np.median(image[arc]) - np.median(image[near]))
        orientations.append(orientation[bones])
    return Arcs(np.array(widths), np.array(contrasts), orientations)


def orientation_summary(angles: np.ndarray) -> tuple[float, float]:
    """(tilt, spread) in degrees of orientations given in 0..180. The tilt is the axial mean's
    angle from the image rows (0 = arcs running left-right, 90 = top-bottom); the spread is
    the circular standard deviation, ``sqrt(-2 ln R) / 2`` of the doubled angles' mean
    resultant length R."""
    if angles.size == 0:
        return float("nan"), float("nan")
    resultant = np.mean(np.exp(2j * np.radians(angles)))
    mean = np.degrees(np.angle(resultant) / 2.0) % 180.0
    spread = np.degrees(np.sqrt(-2.0 * np.log(max(abs(resultant), 1e-12))) / 2.0)
    return float(min(mean, 180.0 - mean)), float(spread)


def approximate_arcs(image: np.ndarray, sky: np.ndarray, centre: tuple[float, float], radius: float) -> np.ndarray:
    """A stand-in for arc truth on real frames, within ``ARC_CENTRE`` of the sky radius.

    The background is the grey opening (disc of radius ``ARC_BACKGROUND_PX``) of the image
    smoothed by a 1 px Gaussian: it follows the sky below anything narrower than about 20 px
    and the dark gaps between neighbouring arcs. Seeds are components where the image rises
    above it by more than ``ARC_SEED_LEVEL`` and ``ARC_SEED_SIGMAS`` noise sigmas (see
    :func:`noise_sigma`); each seed grows to the connected region above half its peak (90th
    percentile of the seed), a FWHM band like the synthetic truth. Regions are kept when they
    hold at least 20 px and are at least ``ARC_ELONGATION`` times longer (skeleton length)
    than wide (area / length), so that stars, hot pixels and the moon drop out.
    """
    rows, cols = np.indices(image.shape)
    centre_sky = sky & (np.hypot(cols - centre[0], rows - centre[1]) <= ARC_CENTRE * radius)
    if centre_sky.sum() < 100:
        return np.zeros_like(sky)
    smooth = ndimage.gaussian_filter(image, 1.0)
    rest = np.where(centre_sky, smooth - ndimage.grey_opening(smooth, footprint=disk(ARC_BACKGROUND_PX)), 0.0)
    threshold = max(ARC_SEED_SIGMAS * noise_sigma(image, sky), ARC_SEED_LEVEL)
    seeds, n = ndimage.label(rest > threshold, structure=np.ones((3, 3)))
    found = np.zeros_like(sky)
    for index in range(1, n + 1):
        seed = seeds == index
        if seed.sum() < 3 or found[seed].all():
            continue
        grown, _ = ndimage.label(rest >= 0.5 * np.percentile(rest[seed], 90), structure=np.ones((3, 3)))
        labels = np.unique(grown[seed])
        region = np.isin(grown, labels[labels > 0])
        length = skeleton_length(skeletonize(region))
        if region.sum() >= MIN_ARC_AREA and length >= ARC_ELONGATION * region.sum() / max(length, 1.0):
            found |= region
    return found


# --------------------------------------------------------------------------------------------
# Per frame, per group


def model_centre(view: ModelView) -> tuple[float, float]:
    """The sky centre (x, y) at the model's scale."""
    sy = view.model01.shape[0] / view.image01.shape[0]
    sx = view.model01.shape[1] / view.image01.shape[1]
    return (view.sky.center[0] + 0.5) * sx - 0.5, (view.sky.center[1] + 0.5) * sy - 0.5


def counts_scale(frame: Frame, view: ModelView) -> tuple[float, float]:
    """(counts per [0, 1] unit, sky median above the dark in counts), from a straight-line
    fit of the normalised image against the raw counts over the unclipped sky."""
    unflattened = normalize(frame.image, PreprocessConfig(flatten_sigma=0.0), frame.ccd_background, view.sky.mask)  # linear in counts
    image01, counts = unflattened[view.sky.mask], frame.image[view.sky.mask].astype(float)
    free = (image01 > 0) & (image01 < 1)
    if free.sum() < 10 or np.ptp(counts[free]) == 0:
        return float("nan"), float("nan"), float("nan")
    slope = np.polyfit(counts[free], image01[free], 1)[0]
    dark = dark_level(frame.image, view.sky.mask, frame.ccd_background)
    return float(1.0 / slope), float(np.median(counts) - dark), float(noise_sigma(unflattened.astype(np.float64), view.sky.mask) / slope)


def frame_stats(frame: Frame, view: ModelView, truth: np.ndarray | None, arcs: bool) -> dict[str, object]:
    """All statistics of one frame (``truth``: its arc mask at the frame's own size, or
    None; ``arcs``: whether to run the approximate arc finder)."""
    image, sky = view.model01.astype(np.float64), view.model_sky
    centre, radius = model_centre(view), view.sky.radius * view.scale
    stats: dict[str, object] = intensity_stats(image, sky)
    sigma = noise_sigma(image, sky)
    per_unit, level, noise_counts = counts_scale(frame, view)
    stats["noise"] = sigma
    stats["noise_rel_median"] = sigma / max(stats["q50"], 1e-6)
    stats["level_counts"] = level
    stats["noise_counts"] = noise_counts
    stats["noise_rel_level"] = noise_counts / level if level > 0 else float("nan")
    stats["noise2_per_level"] = (sigma * per_unit) ** 2 / level if level > 0 else float("nan")
    stats["stars_per_1e4"] = find_stars(image, sky).per_1e4
    profile = radial_profile(image, sky, centre, radius)
    stats["rings"] = [float(v) for v in profile]
    stats["horizon_minus_zenith"] = float(profile[-1] - profile[0])
    stats["edge_brighter"] = float(profile[-1] > profile[0])
    stats["ring_min"] = int(np.nanargmin(profile)) + 1
    sources = {}
    if truth is not None and truth.any():
        sources["truth"] = to_shape(truth.astype(np.float32), image.shape) > 0.5
    if arcs:
        sources["approx"] = approximate_arcs(image, sky, centre, radius)
    for name, mask in sources.items():
        found = arc_stats(image, sky, mask)
        stats[f"{name}_arcs"] = found.count
        if found.count:
            angles = np.concatenate(found.orientations)
            stats[f"{name}_width"] = float(np.median(found.widths))
            stats[f"{name}_contrast"] = float(np.median(found.contrasts))
            stats[f"{name}_tilt"], stats[f"{name}_spread"] = orientation_summary(angles)
    return stats


def measure(group: Group, finder: SkyFinder, config: PreprocessConfig) -> list[dict[str, object]]:
    """Statistics of every frame of a group (frames whose sky cannot be found are skipped)."""
    rows = []
    for frame, truth in zip(group.frames, group.truth):
        try:
            sky = finder(frame.image, frame.site, frame.imager, frame.source)
        except InputError as err:
            print(f"note: {frame.source} frame {frame.index}: {err}; skipped")
            continue
        view = model_view(frame, sky, config)
        rows.append(frame_stats(frame, view, truth, arcs=group.has_arcs))
    return rows


def summarise(rows: list[dict[str, object]]) -> dict[str, dict[str, float]]:
    """Per statistic: the median over frames, the 10th and 90th percentiles, the mean, the
    maximum and how many frames had it (ring profiles element-wise, as ring1..ring8)."""
    values: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if key == "rings":
                for k, v in enumerate(value):
                    values.setdefault(f"ring{k + 1}", []).append(v)
            else:
                values.setdefault(key, []).append(float(value))
    out = {}
    for key, series in values.items():
        series = np.asarray(series, float)
        series = series[np.isfinite(series)]
        if series.size:
            p10, p50, p90 = np.percentile(series, [10, 50, 90])
            out[key] = {"median": float(p50), "p10": float(p10), "p90": float(p90), "mean": float(series.mean()), "max": float(series.max()), "n": int(series.size)}
    return out


# --------------------------------------------------------------------------------------------
# Reports

ROWS = (
    ("q05", "intensity q5", 3),
    ("q25", "intensity q25", 3),
    ("q50", "intensity median", 3),
    ("q75", "intensity q75", 3),
    ("q95", "intensity q95", 3),
    ("at_0", "fraction of sky at 0", 4),
    ("at_1", "fraction of sky at 1", 4),
    ("noise", "noise sigma ([0,1])", 4),
    ("noise_rel_median", "noise / sky median", 3),
    ("level_counts", "sky median above dark (counts; model scale)", 0),
    ("noise_counts", "noise sigma (counts; the frame's own pixels, unflattened)", 1),
    ("noise_rel_level", "noise / sky median above dark", 4),
    ("noise2_per_level", "noise^2 / level (counts; ~ gain for raw counts)", 2),
    ("stars_per_1e4", "stars per 10^4 sky px", 2),
    *((f"ring{k}", f"ring {k} median ({(k - 1) * 10}-{k * 10} deg)", 3) for k in range(1, N_RINGS + 1)),
    ("horizon_minus_zenith", "ring 8 - ring 1", 3),
    ("ring_min", "darkest ring", 0),
    ("edge_brighter", "share of frames with ring 8 > ring 1 (mean)", 2),
    ("truth_arcs", "arcs per frame (truth)", 1),
    ("truth_width", "arc width px (truth)", 1),
    ("truth_contrast", "arc contrast (truth)", 3),
    ("truth_tilt", "arc tilt from image rows deg (truth)", 0),
    ("truth_spread", "arc orientation spread deg (truth)", 0),
    ("approx_arcs", "arcs per frame (approx.)", 1),
    ("approx_width", "arc width px (approx.)", 1),
    ("approx_contrast", "arc contrast (approx.)", 3),
    ("approx_tilt", "arc tilt from image rows deg (approx.)", 0),
    ("approx_spread", "arc orientation spread deg (approx.)", 0),
)


def cell(stat: dict[str, float] | None, digits: int, mean: bool = False) -> str:
    """``median (p10-p90)``, or just the median for one frame or an unvarying statistic;
    the mean alone with ``mean``."""
    if stat is None:
        return "-"
    fmt = f"{{:.{digits}f}}"
    if mean:
        return fmt.format(stat["mean"])
    text = fmt.format(stat["median"])
    if stat["n"] > 1 and fmt.format(stat["p10"]) != fmt.format(stat["p90"]):
        text += f" ({fmt.format(stat['p10'])}-{fmt.format(stat['p90'])})"
    return text


def markdown_table(summary: dict[str, dict]) -> str:
    """Statistic x group, median over frames with the 10th-90th percentile range."""
    names = list(summary)
    lines = [
        "| statistic | " + " | ".join(f"{n} ({summary[n]['frames']} fr.)" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key, label, digits in ROWS:
        cells = [cell(summary[n]["stats"].get(key), digits, "(mean)" in label) for n in names]
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def get(summary: dict, group: str, key: str, field: str = "median") -> float:
    """A summary value of a statistic of a group (median by default), NaN when absent."""
    return summary.get(group, {}).get("stats", {}).get(key, {}).get(field, float("nan"))


def findings(summary: dict, generated: dict) -> str:
    """What differs and what to change in :mod:`arcscan.core.synth`, with the numbers. The
    "one-off check" figures come from a patched copy of synth.py (60 one-frame minutes, 40 for
    the folds; the estimators of this file), not from this script: they are quoted, not
    recomputed."""
    both = {**summary, **generated}

    def v(group: str, key: str, digits: int = 3, field: str = "median") -> str:
        value = get(both, group, key, field)
        return f"{value:.{digits}f}" if np.isfinite(value) else "n/a"

    def each(key: str, groups: tuple[str, ...], digits: int = 3, field: str = "median") -> str:
        return ", ".join(f"{g} {v(g, key, digits, field)}" for g in groups if g in both)

    def pair(key: str, digits: int = 3, field: str = "median") -> str:
        return f"{v('gen: default', key, digits, field)} -> {v('gen: proposed', key, digits, field)}"

    free = ("themis-gill", "themis-gako", "trex-rgb")
    clear = ("themis-gako", "dasc-pkr", "oath")
    arcs = ("dasc-pkr", "oath")
    noise_free = [get(summary, g, "noise") for g in free if g in summary]
    sigmas = lambda x: f"{1 / x:.0f}" if np.isfinite(x) and x > 0 else "n/a"  # noqa: E731
    ring1, ring6 = get(summary, "themis-gako", "ring1"), get(summary, "themis-gako", "ring6")
    efold = 50.0 / np.log(ring6 / ring1) if ring1 > 0 and ring6 > ring1 else float("nan")
    gako_gain = 1.6 * get(summary, "themis-gako", "noise2_per_level") / get(generated, "gen: clear sky", "noise2_per_level")
    gill_gain = 1.6 * get(summary, "themis-gill", "noise2_per_level") / get(generated, "gen: moonlit overcast", "noise2_per_level")
    lines = [
        "## What differs, and what to change in the generator",
        "",
        "Figures marked *one-off check* come from a patched copy of synth.py measured with this "
        "script's functions (60 one-frame minutes; 40 for the folds); they are quoted, not re-run.",
        "",
    ]
    lines.append(
        "1. **Arc-free synthetic skies are flat and noisy (the largest gap).** Noise in [0, 1] units on "
        f"synthetic frames without arcs is {v('synthetic, no arcs', 'noise', 4)} against "
        f"{each('noise', free, 4)} on the real arc-free frames: their 1st-99.5th percentile stretch spans "
        f"only ~{sigmas(get(summary, 'synthetic, no arcs', 'noise'))} noise sigmas instead of "
        f"{'-'.join(sigmas(x) for x in (max(noise_free), min(noise_free))) if noise_free else 'n/a'}, and "
        f"their median sits at {v('synthetic, no arcs', 'q50')} (real {each('q50', free)}). Real skies carry "
        "large-scale light that the generator has no term for: the share of frames brighter in ring 8 "
        f"than at the zenith is {v('synthetic', 'edge_brighter', 2, 'mean')} (synthetic) against "
        f"{each('edge_brighter', clear, 2, 'mean')} on the clear real skies; GAKO's dawn twilight rises "
        f"from {v('themis-gako', 'ring1')} at the zenith to {v('themis-gako', 'ring8')} in ring 8 (an "
        f"e-folding of ~{efold:.0f} degrees of zenith angle from ring 1 to ring 6). Gillam, overcast under "
        f"the moon, darkens outward ({v('themis-gill', 'ring1')} to {v('themis-gill', 'ring8')}) as the "
        f"generated moonlit-overcast frames do ({v('gen: moonlit overcast', 'ring1')} to "
        f"{v('gen: moonlit overcast', 'ring8')}; noise {v('gen: moonlit overcast', 'noise', 4)} vs "
        f"{v('themis-gill', 'noise', 4)}): that scene is already right. **Change** (code: a twilight / "
        "city-glow term in `_airglow`, new fields `p_twilight=0.4`, `twilight=(5, 20)`): add "
        f"`level * exp(-(90 deg - zenith) / {efold:.0f} deg) * (1 + 0.5 cos(azimuth - a0))` with `level` 5-20x "
        "the zenith airglow. One-off check (with the `disc_radius` fix): arc-free noise 0.048 -> 0.033, "
        "share brighter at the edge 0.50 -> 0.70; with the brighter diffuse aurora of point 4 as well, "
        "0.025. (No real dark, clear, arc-free frame is in the shared data, so do not make every sky "
        "bright.)"
    )
    lines.append(
        "2. **Shot noise per count.** noise^2 / level reads the gain, scaled by the scene (this estimator "
        f"gives {v('gen: clear sky', 'noise2_per_level', 2)} on generated clear skies and "
        f"{v('gen: moonlit overcast', 'noise2_per_level', 2)} on generated moonlit overcast, both made with "
        f"`gain=1.6`). Gillam's stream0 frames give {v('themis-gill', 'noise2_per_level', 2)} (like-for-like "
        f"with moonlit overcast: gain ~{gill_gain:.1f}), GAKO's level-1 frames "
        f"{v('themis-gako', 'noise2_per_level', 2)} (against clear skies: gain ~{gako_gain:.1f}). **Change**: "
        "`gain` from the single 1.6 to a per-minute draw, log-uniform in (0.4, 1.6) (code: `gain` becomes a "
        "range); `read_noise=10` can stay (GAKO's whole noise is "
        f"{v('themis-gako', 'noise_counts', 1)} counts at a sky level of {v('themis-gako', 'level_counts', 0)})."
    )
    lines.append(
        "3. **Sky extent.** The starter sky (params.yaml's synthetic profile, 112 px: 10 degrees elevation "
        "for a 126 px horizon) is larger than the sky the generator draws (`disc_radius=(115, 125)` puts 10 "
        "degrees at 102-111 px), so synthetic model skies reach 81-88 degrees from the zenith, into the "
        f"vignetted, extinguished, obstructed rim: the darkest ring is {v('synthetic', 'ring_min', 0)} "
        f"(synthetic) against {each('ring_min', clear, 0)}. THEMIS has 10 degrees at 111.7 px (GAKO skymap, "
        "horizon 124 px) and 112.0 px (Gillam, disc fitted). **Change**: `disc_radius=(123.0, 127.0)`."
    )
    lines.append(
        "4. **Arc contrast.** Median on the arc minus its surroundings (10 px): synthetic truth "
        f"{v('synthetic', 'truth_contrast')}, synthetic by the approximate finder "
        f"{v('synthetic', 'approx_contrast')} (on the same frames the finder agrees with the truth: width "
        f"{v('synthetic', 'approx_width', 1)} vs {v('synthetic', 'truth_width', 1)} px), real "
        f"{each('approx_contrast', arcs)}. A synthetic arc is usually the brightest thing in its sky and "
        "sets the top of the stretch, so lowering `arc_peak` alone trades contrast for noise (one-off "
        "check: upper bound 8000 -> 2500 -> 1500 counts gives approx. contrast 0.41 -> 0.32 -> 0.32 and "
        "noise 0.024 -> 0.032 -> 0.036); other light must compete: the twilight of point 1 and diffuse "
        "aurora as bright as arcs. **Change**: "
        "`p_diffuse` 0.5 -> 0.8, `diffuse_peak=(150, 1200)` -> `(300, 3000)`, the cap in "
        "`_diffuse_aurora` from 0.5x to 1.5x the faintest arc (code), `arc_peak=(120, 8000)` -> "
        "`(120, 2500)`. One-off check with all of these and the twilight: truth contrast 0.37 -> 0.23, "
        "approx. 0.41 -> 0.27, noise 0.024 -> 0.023."
    )
    lines.append(
        f"5. **Arc geometry.** Width is right: synthetic truth {v('synthetic', 'truth_width', 1)} px "
        f"({v('synthetic', 'truth_width', 1, 'p10')}-{v('synthetic', 'truth_width', 1, 'p90')}), real "
        f"{each('approx_width', arcs, 1)}: keep `arc_fwhm`. Orientation: tilt from the image rows "
        f"{v('synthetic', 'truth_tilt', 0)} deg (synthetic) against {each('approx_tilt', arcs, 0)} (DASC "
        "is mounted a quarter-turn round): `_draw_arcs` draws `rotation ~ N(0, 8 deg)`; draw it uniformly in "
        "0-180 deg per minute (the patch augmentation rotates, but the frames and the CRF do not). Spread of "
        f"the local orientation in the central sky: synthetic {v('synthetic', 'approx_spread', 0)} deg "
        f"against {each('approx_spread', arcs, 0)}: the folds are tiny (rms `uniform(0.5, 3.0)` km, under "
        "2 px at the zenith). One-off check (40 frames; +-3 deg between samples): 15 deg as it is, 20 deg "
        "with folds of 3-15 km, 31 deg with 10-30 km; the sag (40 -> 120 km) and the splay between arcs "
        "(3 -> 10 deg) hardly matter. **Change**: the fold rms to `uniform(3, 15)` km. Multiplicity: the "
        "557.7 nm DASC frames hold up to "
        f"{v('dasc-pkr', 'approx_arcs', 0, 'max')} arc pieces; 9 in 10 synthetic frames have at most "
        f"{v('synthetic', 'truth_arcs', 0, 'p90')} arcs: `max_arcs` 3 -> 6."
    )
    lines.append(
        f"6. **Stars.** Per 10^4 sky px: synthetic {v('synthetic', 'stars_per_1e4', 2)}, generated clear "
        f"skies {v('gen: clear sky', 'stars_per_1e4', 2)} against the clear real skies "
        f"{each('stars_per_1e4', ('themis-gako', 'oath'), 2)}: `stars=(30, 200)` is about right. Overcast: "
        f"generated moonlit overcast {v('gen: moonlit overcast', 'stars_per_1e4', 2)} against Gillam's "
        f"{v('themis-gill', 'stars_per_1e4', 2)}. One-off check: without hot pixels 2.3, without hot pixels "
        "and stars 0.6 (the finder's floor on cloud texture); cloud opacity 0.5-0.95 -> 0.8-1.0 changes "
        "nothing, the stars show through gaps (cover is drawn uniform in 20-100%). **Change**: in `_clouds`, "
        "make about a third of the cloudy scenes fully overcast (cover 100%, opacity >= 0.9)."
    )
    lines.append(
        "7. **Outside the generator.** DASC counts are low (sky "
        f"{v('dasc-pkr', 'level_counts', 0, 'p10')}-{v('dasc-pkr', 'level_counts', 0, 'p90')} counts above "
        "the dark); with a stretch floor in counts (the former `preprocess.min_range: 300`) its 427.8 and 630.0 nm "
        f"frames were squeezed (q95 {v('dasc-pkr', 'q95', 2, 'p10')} now, with the floor in noise sigmas, `min_snr`). The "
        "fractions of the sky at exactly 0 and 1 only echo the 1st/99.5th percentile stretch (and, for "
        "resampled imagers, the bilinear resampling)."
    )
    if "gen: proposed" in generated and "gen: default" in generated:
        lines.append(
            "\nThe second table's **gen: default -> gen: proposed** columns (same seeds) apply the changes "
            f"that are `SceneConfig` knobs today ({', '.join(f'`{k}={val}`' for k, val in PROPOSED.items())}; "
            f"gain log-uniform in {PROPOSED_GAIN}, drawn per minute): darkest ring {pair('ring_min', 0)}, "
            f"noise / level {pair('noise_rel_level', 4)}, truth contrast {pair('truth_contrast')}, approx. "
            f"contrast {pair('approx_contrast')}, noise in [0, 1] {pair('noise', 4)}. The rest (twilight, "
            "diffuse cap, folds, rotation, overcast) needs code in synth.py."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Frames generated on the spot: scenes the starter set mixes, and the proposed settings

GENERATED_START = datetime(2030, 1, 1, 6, 0, tzinfo=timezone.utc)
GENERATED_SEED = 90_000  # far from the starter set's seeds
PROPOSED = {"disc_radius": (123.0, 127.0), "arc_peak": (120.0, 2500.0), "p_diffuse": 0.8, "diffuse_peak": (300.0, 3000.0)}
PROPOSED_GAIN = (0.4, 1.6)  # drawn log-uniformly per minute (SceneConfig.gain is one number today)
SCENES = {
    "gen: clear sky": (SceneConfig(p_clouds=0.0, p_moon=0.0), None),
    "gen: moonlit overcast": (SceneConfig(p_clouds=1.0, p_moon=1.0, p_no_arcs=1.0), None),
    "gen: default": (SceneConfig(), None),
    "gen: proposed": (SceneConfig(**PROPOSED), PROPOSED_GAIN),
}


def generated_group(name: str, config: SceneConfig, gains: tuple[float, float] | None, n: int) -> Group:
    """``n`` one-frame minutes of ``config`` (gain drawn log-uniformly in ``gains`` per minute)."""
    group = Group(name, True)
    rng = np.random.default_rng(GENERATED_SEED)
    for i in range(n):
        minute = config if gains is None else replace(config, gain=float(np.exp(rng.uniform(*np.log(gains)))))
        frames, masks = generate_minute(GENERATED_SEED + i, GENERATED_START, n_frames=1, config=minute)
        group.frames.append(frames[0])
        group.truth.append(masks[0])
    return group


def main(argv: list[str] | None = None) -> dict:
    """Measure every group and write the JSON and markdown reports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=ROOT / "data" / "train", help="synthetic frames with *.mask.npz")
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data", help="real-data root")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    parser.add_argument("--generated", type=int, default=30, help="frames per generated scene (0: none)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if not args.real.is_dir():
        print(f"note: real-data folder {args.real} absent; only the synthetic frames are measured")
    finder = sky_finder(args.params, args.real)
    config = load_settings(args.params).preprocess
    groups = [g for g in [load_synthetic(args.train), *load_real(args.real)] if g.frames]
    summary = {}
    for group in groups:
        rows = measure(group, finder, config)
        summary[group.name] = {"frames": len(rows), "files": group.files, "stats": summarise(rows)}
        print(f"{group.name}: {len(rows)} frames")
        if group.name == "synthetic":  # and split by whether the truth has arcs
            for name, part in (("synthetic, arcs", [r for r in rows if r.get("truth_arcs", 0) > 0]), ("synthetic, no arcs", [r for r in rows if not r.get("truth_arcs", 0)])):
                summary[name] = {"frames": len(part), "files": [], "stats": summarise(part)}
    generated = {}
    for name, (scene, gains) in SCENES.items() if args.generated > 0 else ():
        rows = measure(generated_group(name, scene, gains, args.generated), finder, config)
        generated[name] = {"frames": len(rows), "files": [], "stats": summarise(rows)}
        print(f"{name}: {len(rows)} frames")
    seconds = time.perf_counter() - started

    args.out.mkdir(parents=True, exist_ok=True)
    report = {"runtime_s": round(seconds, 1), "settings": settings_record(), "groups": summary, "generated": generated}
    (args.out / "synth_vs_real.json").write_text(json.dumps(report, indent=1) + "\n")
    text = "\n\n".join(
        [
            "# Synthetic vs real frames (model view)",
            "Each cell: median over the group's frames (10th-90th percentile in brackets). All numbers are on "
            "`model01` inside `model_sky` (counts normalised to [0, 1] within the sky, sky radius 112 px). "
            "Rings: 8 equal-width rings from the zenith to the sky's edge. Arcs (truth): the synthetic "
            "ground-truth masks; arcs (approx.): `approximate_arcs` in `benchmarks/synth_vs_real.py` (the "
            "image above its grey opening, seeded above a high threshold, grown to half the peak, elongated, "
            f"within 0.8 of the sky radius). Runtime {seconds:.0f} s. Made by `python benchmarks/synth_vs_real.py`.",
            markdown_table(summary),
            "### Frames generated on the spot\n\nOne-frame minutes of `generate_minute` (seeds from "
            f"{GENERATED_SEED}): clear skies (`p_clouds=0, p_moon=0`), moonlit overcast without arcs "
            "(`p_clouds=1, p_moon=1, p_no_arcs=1`), the defaults and, on the same seeds, the proposed "
            "settings of the findings below.",
            markdown_table(generated) if generated else "(skipped: --generated 0)",
            findings(summary, generated),
        ]
    )
    (args.out / "synth_vs_real.md").write_text(text + "\n")
    print(f"wrote {args.out / 'synth_vs_real.json'} and {args.out / 'synth_vs_real.md'} in {seconds:.1f} s")
    return report


def settings_record() -> dict[str, object]:
    """The measurement settings, for the JSON report."""
    return {
        "star_threshold_sigmas": STAR_THRESHOLD,
        "star_max_size_px": STAR_MAX_SIZE,
        "star_max_size_clipped_px": STAR_MAX_SIZE_CLIPPED,
        "dog_sigmas_px": DOG_SIGMAS,
        "rings": N_RINGS,
        "surround_px": SURROUND_PX,
        "min_arc_area_px": MIN_ARC_AREA,
        "generated_seed": GENERATED_SEED,
        "proposed": {**PROPOSED, "gain": PROPOSED_GAIN},
        "approx": {
            "centre_fraction": ARC_CENTRE,
            "background_opening_radius_px": ARC_BACKGROUND_PX,
            "seed_sigmas": ARC_SEED_SIGMAS,
            "seed_level": ARC_SEED_LEVEL,
            "elongation": ARC_ELONGATION,
        },
    }


if __name__ == "__main__":
    main()
