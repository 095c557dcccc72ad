"""Shared test fixtures: the real THEMIS/OATH samples in ../shared/data (optional)."""

from pathlib import Path

import pytest

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
