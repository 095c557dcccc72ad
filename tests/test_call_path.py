"""Each step of a served frame's path happens once (``benchmarks/call_path.py``): decoded
once, its metadata parsed while decoding, normalised once, answered through one record."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_served_frame_crosses_each_step_once():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "call_path.py")], capture_output=True, text=True, timeout=300, check=True)
    calls = Counter(call.rsplit(":", 1)[1] for call in json.loads(run.stdout)["request_calls"])
    assert {"decode_frames", "__call__", "normalize", "frame_record", "mask_png"} <= set(calls)
    assert max(calls.values()) == 1, calls
    assert not {"timestamp", "ccd_background", "fov_mask"} & set(calls)  # parsed at decoding; the sky mask once per segmenter
