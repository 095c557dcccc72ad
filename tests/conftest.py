"""Shared test fixtures: the real THEMIS/OATH samples in ../shared/data (optional)."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GILLAM = SHARED_DATA / "themis_gill_20140310"
OATH_FRAME = SHARED_DATA / "oath_sample" / "00053.png"


@pytest.fixture
def gillam_files() -> list[Path]:
    if not GILLAM.is_dir():
        pytest.skip(f"real THEMIS samples not present ({GILLAM})")
    return sorted(GILLAM.glob("*.pgm*"))


@pytest.fixture
def oath_frame() -> Path:
    if not OATH_FRAME.is_file():
        pytest.skip(f"real OATH sample not present ({OATH_FRAME})")
    return OATH_FRAME


def write_all_arc_workspace(folder: Path) -> Path:
    """``folder`` with params.yaml (absolute calibration paths, a coarse stride-32 scan) and
    ``all-arc.pt``: a ResNet18 whose last layer calls every patch an arc."""
    import torch

    from arcscan.core.model import ModelConfig, build_model, save_checkpoint

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["scan"]["stride"] = 32
    for profile in params["sky"]["imagers"]:
        for key in ("elevation", "azimuth"):
            if key in profile:
                profile[key] = str(ROOT / profile[key])
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    model = build_model(ModelConfig())
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.fill_(6.0)
    save_checkpoint(folder / "all-arc.pt", model, ModelConfig())
    return folder
