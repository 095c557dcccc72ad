"""serving/build_mar.py packs a model archive from sources whose files carry the time 0 (1970),
as images built reproducibly have them (containers/images.sh): ZIP cannot store times before
1980, so the archive must not take its entries' times from the sources."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from arcscan.core.model import ModelConfig, build_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_a_model_archive_is_built_from_sources_dated_1970(tmp_path):
    if not (ROOT / "data" / "real" / "cal").is_dir():
        pytest.skip("data/real/cal is missing (make data): params.yaml's imager calibrations")
    copy = tmp_path / "repo"
    for part in ("arcscan", "serving", "data/real/cal"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "model-store", "run", "logs"))
    shutil.copy(ROOT / "params.yaml", copy / "params.yaml")
    for folder, _, names in os.walk(copy):
        for name in names:
            os.utime(Path(folder) / name, (0, 0))
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "model.pt", build_model(ModelConfig()), ModelConfig())
    built = subprocess.run(
        [sys.executable, str(copy / "serving" / "build_mar.py"), "--checkpoint", str(checkpoint), "--params", str(copy / "params.yaml"),
         "--version", "t-1970", "--output", str(tmp_path / "store")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    names = zipfile.ZipFile(tmp_path / "store" / "arcscan.mar").namelist()
    assert "handler.py" in names and "arcscan/core/segment.py" in names and "params.yaml" in names
