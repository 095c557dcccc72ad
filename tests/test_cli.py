"""The arcscan command line: segment writes overlay, mask and JSON per frame; bad input
exits 2 with one clear line; label CSV to a patch set; synthetic minutes."""

import gzip
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from arcscan.core.model import ModelConfig, build_model, save_checkpoint
from arcscan.core.synth import write_minute

ROOT = Path(__file__).resolve().parents[1]


def _arcscan(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arcscan", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["scan"]["stride"] = 32  # speed: the maths of the scan are tested elsewhere
    for profile in params["sky"]["imagers"]:  # the calibration files stay in the repository's data
        for key in ("elevation", "azimuth"):
            if key in profile:
                profile[key] = str(ROOT / profile[key])
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    save_checkpoint(folder / "model.pt", build_model(ModelConfig()), ModelConfig())
    write_minute(folder / "frames", seed=26, start=datetime(2026, 1, 1, 6, tzinfo=timezone.utc), n_frames=2)
    return folder


def test_segment_writes_overlay_mask_and_summary(workspace):
    (minute,) = (workspace / "frames").glob("*.pgm.gz")
    result = _arcscan("segment", str(minute), "--checkpoint", "model.pt", "-o", "out", cwd=workspace)
    assert result.returncode == 0, result.stderr
    stem = minute.name.split(".")[0]
    for index in (0, 1):
        summary = json.loads((workspace / "out" / f"{stem}_{index:02d}.json").read_text())
        assert summary["file"] == minute.name and summary["index"] == index and summary["timestamp"].startswith("2026-01-01T06:00:0")
        assert 0 <= summary["arc_fraction"] <= 1 and isinstance(summary["objects"], list)
        mask = np.asarray(Image.open(workspace / "out" / f"{stem}_{index:02d}_mask.png"))
        assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 255}
        assert np.asarray(Image.open(workspace / "out" / f"{stem}_{index:02d}_overlay.png")).shape == (256, 256, 3)


SHARED = ROOT.parent / "shared" / "data"
REAL_FILES = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in {".fits", ".cdf", ".png", ".gz", ".pgm"}) if SHARED.is_dir() else []


@pytest.mark.skipif(not REAL_FILES or not (ROOT / "data" / "real" / "cal").is_dir(), reason="needs ../shared/data and data/real (make data)")
def test_segment_takes_every_real_file_of_every_imager(workspace):
    result = _arcscan("segment", *map(str, REAL_FILES), "--checkpoint", "model.pt", "-o", "real", cwd=workspace)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in sorted((workspace / "real").glob("*.json"))]
    assert {r["file"] for r in records} == {p.name for p in REAL_FILES}
    skies = {r["file"]: r["sky"] for r in records}
    assert skies["PKR_DASC_0558_20151007_082351.743.FITS"] == "profile dasc-pkr"
    assert skies["thg_l1_asf_gako_2011010617_v01.cdf"] == "profile themis-gako"
    assert skies["00053.png"] == "estimated"
    mask = np.asarray(Image.open(workspace / "real" / "PKR_DASC_0558_20151007_082351_00_mask.png"))
    assert mask.shape == (512, 512)


@pytest.mark.parametrize(("content", "message"), [
    (gzip.compress(b"P5\n256 256\n65535\n" + bytes(1000))[:-20], "truncated gzip"),
    (b"not an image at all", "not a recognised frame format"),
    (b"P5\n4 4\n255\n" + bytes(16), "8-bit PGM"),
])
def test_segment_bad_input_exits_2_with_a_message(workspace, content, message):
    bad = workspace / "bad.pgm.gz"
    bad.write_bytes(content)
    result = _arcscan("segment", str(bad), "--checkpoint", "model.pt", "-o", "out", cwd=workspace)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_patches_from_a_label_csv(workspace):
    (minute,) = (workspace / "frames").glob("*.pgm.gz")
    (workspace / "labels.csv").write_text(f"file,frame,x,y,label\n{minute.name},0,128,128,arc\n{minute.name},1,60,60,other\n")
    result = _arcscan("patches", "labels.csv", "--frames", "frames", "-o", "set.npz", cwd=workspace)
    assert result.returncode == 0 and "1 arc and 1 other" in result.stdout
    bad = _arcscan("patches", "labels.csv", "--frames", "nowhere", "-o", "set.npz", cwd=workspace)
    assert bad.returncode == 2 and "not found in nowhere" in bad.stderr


def test_synth_writes_minutes(workspace):
    result = _arcscan("synth", "syn", "--seed", "3", "--minutes", "2", "--frames", "2", cwd=workspace)
    assert result.returncode == 0
    assert len(list((workspace / "syn").glob("*.pgm.gz"))) == 2 and len(list((workspace / "syn").glob("*.mask.npz"))) == 2
