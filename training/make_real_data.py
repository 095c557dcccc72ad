"""Build the real-frame part of the starter dataset in ``data/real/`` from the shared samples.

    python training/make_real_data.py ../shared/data data/real

Copies the real frames (``train/``: hand-labelled patches in ``labels.csv``; ``valid/``:
pixel-level reference masks) and their calibration (``cal/``) from the shared data folder,
keeping the original file names; lists the training frames without arcs in
``train/arc_free.txt``; builds each validation file's reference masks
``valid/<file>.ref.npz`` from the hand-made inputs in ``training/real_reference.yaml``; and
writes ``data/real/README.md`` (content, source, licence and acknowledgement of every file,
the split, the reference-mask procedure and the counts). Re-running is idempotent: files
already copied are checked, masks and README rewritten identically. ``labels.csv`` is made
by hand and only read here (for the counts in the README).

Reference masks (one ``.ref.npz`` a validation file): ``arcs`` int16 (n_frames, H, W), 0 no
arc and k reference arc k (numbered per frame in the order of the YAML); ``ignore`` bool,
same shape, pixels excluded from scoring. ``arcs`` and ``ignore`` never overlap.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits
from scipy import ndimage as ndi
from skimage.draw import polygon2mask

from arcscan import read_frames
from arcscan.io.reference import write_arc_free_list, write_reference

REFERENCE_YAML = Path(__file__).with_name("real_reference.yaml")

# Split (fixed): source path under the shared data folder, per destination folder.
FILES: dict[str, list[str]] = {
    "train": [
        "oath_sample/00053.png",
        "trex_rgb_gill/20211030_060500_149606_gill_rgb-04_320ms_burst.png",
        "trex_rgb_gill/20200508_060500_122643_gill_rgb-04_320ms_full.png",
        "themis_gill_20140310/20140310_0600_gill_themis19_full.pgm.gz",
        "themis_gill_20140310/20140310_0603_gill_themis19_full.pgm.gz",
    ],
    "valid": [
        "dasc_pkr_20151007/PKR_DASC_0428_20151007_082355.961.FITS",
        "dasc_pkr_20151007/PKR_DASC_0558_20151007_082351.743.FITS",
        "dasc_pkr_20151007/PKR_DASC_0558_20151007_082404.243.FITS",
        "dasc_pkr_20151007/PKR_DASC_0630_20151007_082359.586.FITS",
        "themis_gako_20110106/thg_l1_asf_gako_2011010617_v01.cdf",
    ],
    "cal": [
        "dasc_pkr_20151007/cal/PKR_DASC_0558_20150213_El.FIT",
        "dasc_pkr_20151007/cal/PKR_DASC_0558_20150213_Az.FIT",
        "themis_gako_20110106/themis_skymap_gako_20110305-+_vXX.sav",
    ],
}

# Training frames without any arc: every patch of their sky is a negative (training/patches.py).
ARC_FREE = [
    "20200508_060500_122643_gill_rgb-04_320ms_full.png",
    "20140310_0600_gill_themis19_full.pgm.gz",
    "20140310_0603_gill_themis19_full.pgm.gz",
]

_EIGHT = np.ones((3, 3), bool)  # 8-connectivity for connected parts


# --------------------------------------------------------------------------------------- copy


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_files(source: Path, dest: Path) -> list[Path]:
    """Copy every file of :data:`FILES` to ``dest/<split>/<name>``; refuse (SystemExit, all
    missing sources listed) before copying anything if a source is absent. Files already
    there with the same content are left alone."""
    missing = [rel for rels in FILES.values() for rel in rels if not (source / rel).is_file()]
    if missing:
        raise SystemExit(f"{source}: missing source file(s): " + ", ".join(missing) + " (see the shared data README)")
    copied = []
    for split, rels in FILES.items():
        (dest / split).mkdir(parents=True, exist_ok=True)
        for rel in rels:
            src, out = source / rel, dest / split / Path(rel).name
            if not (out.is_file() and out.stat().st_size == src.stat().st_size and _sha256(out) == _sha256(src)):
                shutil.copyfile(src, out)
                print(f"copied {rel} -> {out}")
            copied.append(out)
    return copied


# ------------------------------------------------------------------------------ calibration


def read_fits_array(path: Path) -> np.ndarray:
    """The primary array of a FITS file as float64 (the DASC El/Az maps, degrees; astropy
    applies BSCALE/BZERO), since the frame readers round to 16-bit counts."""
    return np.asarray(fits.getdata(path), dtype=np.float64)


def sky_mask(spec: dict, stack: np.ndarray, cal_dir: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The scored sky of a file (bool H x W) and its elevation/azimuth maps (or None).

    ``elevation``: an El map (FITS) whose pixels at or above ``min_elevation`` are sky (the
    DASC map is 0 below 10 degrees), with ``azimuth`` the matching Az map. ``lit_disc``: the
    frames' median above ``threshold`` counts, its largest part with holes filled, eroded
    by ``erode`` pixels (the soft edge of the disc)."""
    if "elevation" in spec:
        el = read_fits_array(cal_dir / spec["elevation"])
        az = read_fits_array(cal_dir / spec["azimuth"]) if "azimuth" in spec else None
        return el >= float(spec.get("min_elevation", 10.0)), el, az
    lit = spec["lit_disc"]
    bright = np.median(stack, axis=0) > float(lit["threshold"])
    labels, n = ndi.label(bright, _EIGHT)
    if n == 0:
        raise ValueError(f"no pixel above the lit-disc threshold {lit['threshold']}")
    largest = 1 + int(np.argmax(ndi.sum(bright, labels, range(1, n + 1))))
    disc = ndi.binary_fill_holes(labels == largest)
    erode = int(lit.get("erode", 0))
    return (ndi.binary_erosion(disc, iterations=erode) if erode else disc), None, None


def horizon_ignore(rules: list[dict], el: np.ndarray | None, az: np.ndarray | None) -> np.ndarray | None:
    """Pixels below ``elevation_below`` degrees within the ``azimuth`` range [from, to]
    (clockwise, may wrap through 0), for each rule; None without rules."""
    if not rules:
        return None
    if el is None or az is None:
        raise ValueError("horizon ignore rules need elevation and azimuth maps")
    out = np.zeros(el.shape, bool)
    for rule in rules:
        start, stop = (float(a) % 360 for a in rule["azimuth"])
        within = (az >= start) & (az <= stop) if start <= stop else (az >= start) | (az <= stop)
        out |= within & (el < float(rule["elevation_below"]))
    return out


# ---------------------------------------------------------------------------- masks


def polygon_mask(shape: tuple[int, int], points: list[list[float]]) -> np.ndarray:
    """Pixels inside a polygon given as [x, y] vertices (x column, y row)."""
    vertices = np.asarray(points, float)
    return polygon2mask(shape, vertices[:, ::-1])


def background_subtracted(image: np.ndarray, sky: np.ndarray, sigma: float, window: int) -> np.ndarray:
    """Gaussian-smoothed image minus its wide median (``window`` pixels), zero outside the sky.

    Pixels outside the sky take their nearest sky pixel's value first, so the dark corners
    do not pull the background down at the rim. Windows over 40 px are computed on a 2x2
    (or coarser) block mean and interpolated back: the background is smooth, and a full
    57-px median of a 512-px frame takes ~10 s."""
    smooth = ndi.gaussian_filter(image.astype(np.float64), sigma)
    nearest = ndi.distance_transform_edt(~sky, return_distances=False, return_indices=True)
    filled = smooth[nearest[0], nearest[1]]
    step = max(1, window // 28)
    if step == 1:
        background = ndi.median_filter(filled, size=window, mode="nearest")
    else:
        h, w = filled.shape
        hs, ws = -(-h // step), -(-w // step)
        padded = np.pad(filled, ((0, hs * step - h), (0, ws * step - w)), mode="edge")
        coarse = padded.reshape(hs, step, ws, step).mean(axis=(1, 3))
        coarse = ndi.median_filter(coarse, size=(window // step) | 1, mode="nearest")
        rows = (np.arange(h) + 0.5) / step - 0.5
        cols = (np.arange(w) + 0.5) / step - 0.5
        grid = np.meshgrid(rows, cols, indexing="ij")
        background = ndi.map_coordinates(coarse, grid, order=1, mode="nearest")
    out = smooth - background
    out[~sky] = 0.0
    return out


def median_window(sky: np.ndarray, fraction: float) -> int:
    """Odd median window: ``fraction`` of the sky diameter (from the sky's area)."""
    diameter = 2.0 * np.sqrt(sky.sum() / np.pi)
    return int(round(fraction * diameter)) | 1


def frame_reference(
    image: np.ndarray, sky: np.ndarray, spec: dict, defaults: dict, base_ignore: np.ndarray, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Reference ``arcs`` (int16) and ``ignore`` (bool) of one frame from its YAML entry.

    Per person-drawn arc polygon (within the sky, outside person-drawn ignore polygons and
    earlier arcs' polygons): the pixels of the background-subtracted image at or above
    ``high`` (the frame's, or the arc's own) form arc k: their largest 8-connected part plus
    the parts holding a ``keep`` point. Inside the polygon, other pixels at or above ``low`` (the arc's fringe, unkept
    fragments, stars) are ignored, and so is a ``band``-px ring around each arc."""
    shape = image.shape
    ignore = base_ignore | ~sky
    for item in spec.get("ignore") or []:
        ignore |= polygon_mask(shape, item["polygon"])
    arcs = np.zeros(shape, np.int16)
    arc_specs = spec.get("arcs") or []
    if not arc_specs:
        return arcs, ignore
    options = {**defaults, **spec}
    window = median_window(sky, float(options["median_fraction"]))
    diff = background_subtracted(image, sky, float(options["smooth_sigma"]), window)
    band = int(options["boundary_band"])
    fringe = np.zeros(shape, bool)
    claimed = ignore.copy()
    for k, arc in enumerate(arc_specs, start=1):
        region = polygon_mask(shape, arc["polygon"]) & ~claimed
        claimed |= region
        high, low = float(arc.get("high", spec["high"])), float(arc.get("low", spec["low"]))
        labels, n = ndi.label(region & (diff >= high), _EIGHT)
        if n == 0:
            raise ValueError(f"{where}: arc {k} ({arc['name']}): no pixel above high = {high}")
        keep = {1 + int(np.argmax(ndi.sum(labels > 0, labels, range(1, n + 1))))}
        for x, y in arc.get("keep") or []:
            if labels[y, x] == 0:
                raise ValueError(f"{where}: arc {k} ({arc['name']}): keep point ({x}, {y}) is not above high")
            keep.add(int(labels[y, x]))
        member = np.isin(labels, sorted(keep))
        arcs[member] = k
        fringe |= region & (diff >= low) & ~member
    for k in range(1, len(arc_specs) + 1):
        member = arcs == k
        fringe |= ndi.binary_dilation(member, _EIGHT, iterations=band) & ~member
    ignore |= fringe & (arcs == 0)
    return arcs, ignore


def _frame_specs(entry: dict, n_frames: int, name: str) -> list[dict]:
    """One spec per frame: entries with ``frame: all`` apply to every frame."""
    specs: list[dict | None] = [None] * n_frames
    for spec in entry.get("frames") or []:
        indices = range(n_frames) if spec["frame"] == "all" else [int(spec["frame"])]
        for i in indices:
            if not 0 <= i < n_frames:
                raise ValueError(f"{name}: no frame {i} (it has {n_frames})")
            specs[i] = spec
    absent = [i for i, s in enumerate(specs) if s is None]
    if absent:
        raise ValueError(f"{name}: frames {absent} have no reference entry")
    return specs  # type: ignore[return-value]


def reference_masks(path: Path, entry: dict, defaults: dict, cal_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``arcs`` (int16) and ``ignore`` (bool), shape (n_frames, H, W), of one validation file
    from its entry in the reference YAML."""
    frames = read_frames(path)
    stack = np.stack([f.image for f in frames])
    sky, el, az = sky_mask(entry["sky"], stack, cal_dir)
    if sky.shape != stack.shape[1:]:
        raise ValueError(f"{path.name}: sky mask {sky.shape} does not match frames {stack.shape[1:]}")
    base = horizon_ignore(entry.get("horizon_ignore") or [], el, az)
    base = np.zeros(sky.shape, bool) if base is None else base
    for item in entry.get("ignore") or []:  # file-wide obstructions
        base |= polygon_mask(sky.shape, item["polygon"])
    out = [
        frame_reference(stack[i], sky, spec, defaults, base, f"{path.name} frame {i}")
        for i, spec in enumerate(_frame_specs(entry, len(frames), path.name))
    ]
    return np.stack([a for a, _ in out]), np.stack([g for _, g in out])


def load_reference(path: Path = REFERENCE_YAML) -> dict:
    """The reference YAML: ``defaults`` and ``files`` (validation file name -> entry)."""
    return yaml.safe_load(path.read_text())


def build_references(dest: Path, reference: dict) -> dict[str, list[int]]:
    """Write ``valid/<file>.ref.npz`` for every validation file; reference arcs per frame."""
    counts = {}
    names = {Path(rel).name for rel in FILES["valid"]}
    if set(reference["files"]) != names:
        raise ValueError(f"reference YAML files {sorted(reference['files'])} differ from the validation files {sorted(names)}")
    for name in sorted(names):
        arcs, ignore = reference_masks(dest / "valid" / name, reference["files"][name], reference["defaults"], dest / "cal")
        write_reference(dest / "valid" / name, arcs, ignore)
        counts[name] = [int(a.max()) for a in arcs]
        print(f"{name}: reference arcs per frame {counts[name]}, arc pixels {(arcs > 0).mean():.2%}, ignored {ignore.mean():.2%}")
    return counts


# ---------------------------------------------------------------------------- README


def label_counts(path: Path) -> dict[str, Counter]:
    """Labels per class per file of ``labels.csv`` (empty when it is absent)."""
    if not path.is_file():
        return {}
    counts: dict[str, Counter] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            counts.setdefault(row["file"], Counter())[row["label"]] += 1
    return counts


_DESCRIPTIONS = {
    "00053.png": ("THEMIS ASI frame via the Oslo Auroral THEMIS (OATH) dataset, image 00053 (human label \"arc\"): 256 x 256 16-bit RGB PNG, data in the green channel, cropped to the field of view and rescaled to 0..65535. One clear east-west discrete arc.",
                  "OATH dataset (Clausen & Nickisch 2018)", "CC BY 4.0"),
    "20211030_060500_149606_gill_rgb-04_320ms_burst.png": ("TREx RGB colour frame, Gillam, 2021-10-30 06:05:00 UT, 480 x 553 8-bit RGB: faint green discrete arcs near the northern horizon (top of the image), trees/buildings at the edges.",
                                                           "test data of ucalgary-srs/trex-imager-readfile; data University of Calgary TREx", "MIT"),
    "20200508_060500_122643_gill_rgb-04_320ms_full.png": ("TREx RGB colour frame, Gillam, 2020-05-08 06:05:00 UT, 480 x 553 8-bit RGB: bright twilight and cloud, masts and a cable, no arcs.",
                                                          "test data of ucalgary-srs/trex-imager-readfile; data University of Calgary TREx", "MIT"),
    "20140310_0600_gill_themis19_full.pgm.gz": ("THEMIS ASI stream0 minute, Gillam (themis19), 2014-03-10 06:00 UT: 20 frames 256 x 256 16-bit, overcast moonlit sky with a bright moon glow and horizon obstructions, no arcs.",
                                                "test suite of ucalgary-srs/themis-imager-readfile", "MIT"),
    "20140310_0603_gill_themis19_full.pgm.gz": ("THEMIS ASI stream0 minute, Gillam (themis19), 2014-03-10 06:03 UT: as the 06:00 minute (overcast, moon glow), no arcs.",
                                                "test suite of ucalgary-srs/themis-imager-readfile", "MIT"),
    "PKR_DASC_0428_20151007_082355.961.FITS": ("Poker Flat DASC frame, 427.8 nm, 2015-10-07 08:23:55.961 UT, 512 x 512 int16 FITS: the arcs of the 557.7 nm frames, faint and noisy.",
                                               "test data of dascutils 2.3.0; data Geophysical Institute, UAF (Poker Flat Research Range)", "Apache-2.0"),
    "PKR_DASC_0558_20151007_082351.743.FITS": ("Poker Flat DASC frame, 557.7 nm, 2015-10-07 08:23:51.743 UT: several discrete arcs running top to bottom in the image.",
                                               "test data of dascutils 2.3.0; data Geophysical Institute, UAF (Poker Flat Research Range)", "Apache-2.0"),
    "PKR_DASC_0558_20151007_082404.243.FITS": ("Poker Flat DASC frame, 557.7 nm, 2015-10-07 08:24:04.243 UT: the same arcs 12.5 s later.",
                                               "test data of dascutils 2.3.0; data Geophysical Institute, UAF (Poker Flat Research Range)", "Apache-2.0"),
    "PKR_DASC_0630_20151007_082359.586.FITS": ("Poker Flat DASC frame, 630.0 nm, 2015-10-07 08:23:59.586 UT: diffuse red-line emission: one narrow discrete band, a broad faint band, bright limb patches.",
                                               "test data of dascutils 2.3.0; data Geophysical Institute, UAF (Poker Flat Research Range)", "Apache-2.0"),
    "thg_l1_asf_gako_2011010617_v01.cdf": ("THEMIS level-1 full-resolution frames, Gakona (GAKO, themis20), NASA CDF, 2011-01-06 17:00-17:01 UT: 23 frames 256 x 256, clear sky with stars and dawn twilight, trees at the edge, no arcs.",
                                           "test data of space-physics/themisasi", "MIT"),
    "PKR_DASC_0558_20150213_El.FIT": ("DASC 557.7 nm camera per-pixel elevation (degrees, 512 x 512 float32; 0 below 10 degrees). Defines the DASC sky (El >= 10) and the horizon band.",
                                      "test data of dascutils 2.3.0; data Geophysical Institute, UAF", "Apache-2.0"),
    "PKR_DASC_0558_20150213_Az.FIT": ("DASC 557.7 nm camera per-pixel azimuth (degrees east of north, 512 x 512 float32); site 65.126 N, 147.479 W.",
                                      "test data of dascutils 2.3.0; data Geophysical Institute, UAF", "Apache-2.0"),
    "themis_skymap_gako_20110305-+_vXX.sav": ("THEMIS GAKO skymap (IDL save): per-pixel elevation, azimuth and pixel-corner geographic coordinates at 90/110/150 km; site 62.41 N, 214.84 E; valid from 2011-03-05 (close to, not exactly, the January frames). For geographic mapping; not used by the masks.",
                                              "test data of space-physics/themisasi", "MIT"),
}


def write_readme(dest: Path, reference: dict, arc_counts: dict[str, list[int]]) -> Path:
    """``dest/README.md``: files, sources, licences, acknowledgements, split, procedure, counts."""
    labels = label_counts(dest / "labels.csv")
    lines = [
        "# Real frames of the starter dataset",
        "",
        "Built by `python training/make_real_data.py ../shared/data data/real` (copies the frames from the",
        "shared samples under their original names, writes the reference masks from",
        "`training/real_reference.yaml` and this README). `labels.csv` is made by hand (below).",
        "",
        "## Files",
        "",
        "| file | what it is | source | licence |",
        "|---|---|---|---|",
    ]
    for split, rels in FILES.items():
        for rel in rels:
            name = Path(rel).name
            what, source, licence = _DESCRIPTIONS[name]
            lines.append(f"| `{split}/{name}` | {what} | {source} | {licence} |")
    lines += [
        "| `labels.csv` | hand-made patch labels on the training frames (below) | this project | same as the frames labelled |",
        "| `valid/<file>.ref.npz` | reference arc masks of each validation file (below) | this project, from `training/real_reference.yaml` | same as the frame |",
        "",
        "Licences: MIT (THEMIS stream0 and CDF samples, TREx samples: the readers' test data),",
        "Apache-2.0 (DASC samples: dascutils), CC BY 4.0 (OATH). Derived labels and masks carry the",
        "licence of the frame they describe.",
        "",
        "## Acknowledgements (required when these data are used)",
        "",
        "- THEMIS (the Gillam and Gakona frames and the OATH frame): THEMIS ASI data, NASA contract",
        "  NAS5-02099 (V. Angelopoulos); S. Mende and E. Donovan for the ASI data; CSA for logistics.",
        "- OATH: Clausen, L. B. N., & Nickisch, H. (2018). Automatic classification of auroral images",
        "  from the Oslo Auroral THEMIS (OATH) data set using machine learning. JGR Space Physics,",
        "  123, 5640-5647; data set CC BY 4.0.",
        "- TREx RGB: data courtesy of the Transition Region Explorer (TREx) project, University of",
        "  Calgary.",
        "- DASC: Poker Flat Digital All-Sky Camera data courtesy of the Geophysical Institute,",
        "  University of Alaska Fairbanks (Poker Flat Research Range).",
        "",
        "## Split and why",
        "",
        "- `train/`: frames that receive hand-made **patch labels** (`labels.csv`): THEMIS via OATH",
        "  (a clear arc), TREx RGB (faint arcs; twilight and cloud), THEMIS Gillam (moon, overcast,",
        "  obstructions: real negatives). Two Gillam minutes of six, for the frame-to-frame",
        "  variation without filling the set with near-duplicates.",
        "- `valid/`: frames with **pixel reference masks**, from another imager and scene (Poker Flat",
        "  DASC: 512 px frames, three wavelengths, arcs running top-bottom in the image, i.e. an",
        "  orientation unseen in training) and another THEMIS site and night (Gakona: clear sky,",
        "  stars and twilight, no arcs: false alarms). No validation frame is labelled or trained on.",
        "- `cal/`: the DASC elevation/azimuth maps (the sky and horizon band of the DASC masks; the",
        "  427.8 and 630.0 nm frames are taken through the same lens and share them) and the GAKO",
        "  skymap (geographic mapping).",
        "",
        "## labels.csv",
        "",
        "Columns `file,frame,x,y,label`: `file` a base name in `train/`, `frame` the index within it,",
        "`x` column and `y` row of the patch centre in the file's native pixels (y down), `label`",
        "`arc` (the centre pixel on a discrete arc) or `other` (no arc near: at least ~20 native px",
        "away on OATH, ~50 on TREx, i.e. outside a 32-px patch at the model's 112-px sky radius).",
        "Placed by a person looking at each frame (stretched renders with a coordinate grid,",
        "zoomed crops, then the labels drawn back on the frames as patch boxes and checked): arc",
        "centres along the arcs traced on the renders, every 6 px (OATH) or 12 px (TREx) in x,",
        "each at the brightest row within 5 px of the traced curve in its column. `other` centres",
        "cover moon glow, overcast, horizon obstructions and trees, stars, the bright limb, twilight,",
        "cables and masts, and the dark sky between arcs; all centres lie inside the sky.",
        "",
        "| file | arc | other |",
        "|---|---|---|",
    ]
    for name, counter in sorted(labels.items()):
        lines.append(f"| `{name}` | {counter.get('arc', 0)} | {counter.get('other', 0)} |")
    total = sum(labels.values(), Counter())
    lines += [
        f"| total | {total.get('arc', 0)} | {total.get('other', 0)} |",
        "",
        "## Reference masks (`valid/<file>.ref.npz`)",
        "",
        "Each holds `arcs` (int16, n_frames x H x W: 0 no arc, k reference arc k, numbered per frame)",
        "and `ignore` (bool, same shape: excluded from scoring); the two never overlap. Procedure",
        "(`reference_masks` in `training/make_real_data.py`; every hand-made input, with comments, in",
        "`training/real_reference.yaml`):",
        "",
        "1. Sky: DASC, the pixels the El map puts at or above 10 degrees (it is 0 below); GAKO, the",
        "   lit disc (median of the 23 frames above a count threshold, largest part, holes filled,",
        "   eroded 2 px). Outside the sky is ignore.",
        "2. Person-drawn ignore: DASC, the horizon band below 20 degrees at azimuths 128-288 degrees",
        "   (the bright, arc-free limb from the top right through the right to the bottom of the",
        "   image), polygons around the low-elevation lights on the northern (left) limb and other",
        "   ambiguous regions (fragments between arcs, arcs too faint in a frame, the 630.0 nm limb",
        "   glow and broad band); GAKO, polygons around the obstructions (tree tops cutting into the",
        "   disc edge, a pole, the housing at the lower right).",
        "3. Background-subtracted image per frame: Gaussian smoothing (sigma in the YAML, 1.5 px by",
        "   default) minus a wide median filter (1/8 of the sky diameter: 57 px on DASC; computed on",
        "   a 2 x 2 block mean and interpolated back; pixels outside the sky first take their",
        "   nearest sky value).",
        "4. Per person-drawn arc polygon (enclosing one individual arc): pixels at or above the",
        "   frame's `high` threshold (an arc may override it: the faint thin arc of 08:24:04) form reference arc k (the largest 8-connected part, plus any",
        "   part the person keeps with a `keep` point); pixels from `low` up to `high` inside the",
        "   polygon, and unkept parts (stars, fragments), are ignore; so is a 2-px ring around each",
        "   arc. Polygons are claimed in order (a pixel belongs to the first polygon that holds it).",
        "5. Frames without arc polygons (GAKO) have no arcs: every sky pixel outside the ignore",
        "   polygons is scored as non-arc.",
        "",
        "Thresholds per frame (counts of the background-subtracted image; ~5 and ~2.5 times its",
        "noise on the 557.7 and 427.8 nm frames) and reference arcs. The arcs run top to bottom in",
        "the DASC image, i.e. ESE-WNW on the sky (the Az map puts azimuth ~120 deg at the top,",
        "~295 at the bottom, ~25 at the left): across the arcs, left is north (poleward).",
        "",
        "| file | frame(s) | smoothing sigma | high | low | reference arcs |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(arc_counts):
        entry = reference["files"][name]
        for spec in entry.get("frames") or []:
            which = spec["frame"]
            if which == "all":
                n = sorted(set(arc_counts[name]))
                lines.append(f"| `{name}` | all {len(arc_counts[name])} | - | - | - | {', '.join(map(str, n))} |")
            else:
                arcs = spec.get("arcs") or []
                names = "; ".join(
                    f"{k}: {a['name']}" + (f" (high {a['high']}, low {a['low']})" if "high" in a else "") for k, a in enumerate(arcs, start=1)
                )
                sigma = spec.get("smooth_sigma", reference["defaults"]["smooth_sigma"])
                lines.append(f"| `{name}` | {which} | {sigma} | {spec.get('high', '-')} | {spec.get('low', '-')} | {arc_counts[name][int(which)]} ({names}) |")
    lines += [
        "",
        "Limits: the masks are one person's reading of faint, partly overlapping structures; arc",
        "ends and widths are threshold-dependent (hence the ignore fringe); faint arc segments",
        "below `high` are ignore, not arc, so an arc may be split along its length into the parts",
        "kept. The DASC El/Az maps are of the 557.7 nm camera and dated 2015-02-13; the disc of",
        "the 427.8 nm frame sits a few pixels off theirs. Score arcs as objects (matched per",
        "reference arc) as well as per pixel.",
        "",
    ]
    path = dest / "README.md"
    path.write_text("\n".join(lines))
    return path


def main(source: Path, dest: Path) -> None:
    copy_files(source, dest)
    write_arc_free_list(dest / "train", ARC_FREE)
    reference = load_reference()
    counts = build_references(dest, reference)
    write_readme(dest, reference, counts)
    print(f"wrote {dest / 'README.md'}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[1])
    main(Path(sys.argv[1]), Path(sys.argv[2]))
