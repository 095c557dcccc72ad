"""Synthetic frames next to real ones: docs/montage.png.

Row 1: synthetic THEMIS frames (arcscan.core.synth) for a few seeds; row 2: real frames (two
Gillam minutes, moonlit overcast, and the OATH arc frame) with a radial brightness profile
of both kinds; row 3: the synthetic frames again with their ground-truth arc masks outlined.
All images get the same robust stretch (1st-99.5th percentile of the frame). The real
frames are read from ``<repo>/../shared/data``; without it the real row is skipped.

Run from anywhere: ``.venv/bin/python docs/montage.py``.
"""

from __future__ import annotations

import io
import sys
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from arcscan.io.frames import read_frames  # noqa: E402
from arcscan.core.synth import generate_minute  # noqa: E402

DATA = REPO.parent / "shared" / "data"
OUTPUT = REPO / "docs" / "montage.png"
SYNTHETIC = {  # seed: what the scene holds (see arcscan.core.synth; checked by eye)
    26: "arcs + diffuse aurora",
    5: "low arcs, moon",
    21: "arcs, moon, clouds",
    11: "moon + clouds, no arc",
}
REAL = [
    ("themis_gill_20140310/20140310_0600_gill_themis19_full.pgm.gz", 0, "Gillam 06:00:00, overcast + moon"),
    ("themis_gill_20140310/20140310_0603_gill_themis19_full.pgm.gz", 10, "Gillam 06:03:30, overcast + moon"),
    ("oath_sample/00053.png", 0, "OATH 00053, arc (rescaled 0..65535)"),
]


def stretch(image: np.ndarray) -> tuple[float, float]:
    """The display range: 1st and 99.5th percentiles of the frame."""
    low, high = np.percentile(image, [1.0, 99.5])
    return float(low), float(max(high, low + 1.0))


def radial_profile(image: np.ndarray, centre: tuple[float, float] = (127.5, 127.5)) -> tuple[np.ndarray, np.ndarray]:
    """Median counts in 4-px rings around ``centre``."""
    rows, cols = np.indices(image.shape)
    ring = (np.hypot(cols - centre[0], rows - centre[1]) // 4).astype(int)
    radii = np.arange(ring.max() + 1)
    return radii * 4 + 2, np.array([np.median(image[ring == r]) for r in radii])


def show(ax: plt.Axes, image: np.ndarray, title: str) -> None:
    low, high = stretch(image)
    ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    ax.set_title(f"{title}\n{low:.0f}-{high:.0f} counts", fontsize=8)
    ax.set_axis_off()


def main() -> None:
    start = datetime(2026, 1, 1, 6, 0, tzinfo=timezone.utc)
    synthetic = {seed: generate_minute(seed, start, n_frames=1) for seed in SYNTHETIC}
    real = []
    if DATA.is_dir():
        real = [(read_frames(DATA / path)[index].image, title) for path, index, title in REAL]
    else:
        print(f"{DATA} is absent: skipping the row of real frames")

    rows = 3 if real else 2
    fig, axes = plt.subplots(rows, 4, figsize=(11, 3.1 * rows))
    synthetic_row, mask_row = axes[0], axes[-1]
    for ax, (seed, (frames, _)) in zip(synthetic_row, synthetic.items()):
        show(ax, frames[0].image, f"synthetic {seed}: {SYNTHETIC[seed]}")
    for ax, (seed, (frames, masks)) in zip(mask_row, synthetic.items()):
        show(ax, frames[0].image, f"seed {seed}: truth, {masks[0].mean():.1%} arc")
        if masks[0].any():
            ax.contour(masks[0], levels=[0.5], colors="red", linewidths=0.7)
    if real:
        for ax, (image, title) in zip(axes[1], real):
            show(ax, image, title)
        profile_ax = axes[1, 3]
        gillam_image = real[0][0]  # its disc is centred near (132, 128.5)
        profile_ax.plot(*radial_profile(gillam_image, (132.0, 128.5)), "k-", label="Gillam 06:00")
        for seed, (frames, _) in synthetic.items():
            profile_ax.plot(*radial_profile(frames[0].image), lw=0.8, label=f"seed {seed}")
        profile_ax.set_xlabel("px from disc centre", fontsize=7)
        profile_ax.set_ylabel("median counts", fontsize=7)
        profile_ax.set_title("radial profiles (raw counts)", fontsize=8)
        profile_ax.tick_params(labelsize=7)
        profile_ax.legend(fontsize=6)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(colors=256).save(OUTPUT, optimize=True)
    print(f"{OUTPUT} ({OUTPUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
