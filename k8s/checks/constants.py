"""What several checks share: the repository root and the component labels of arcscan's pods."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # k8s/checks/constants.py -> the repository
TORCHSERVE_COMPONENT = "torchserve"
STREAM_CLIENT_COMPONENT = "stream-client"
