"""Each step of a served frame's path happens once (``benchmarks/call_path.py``): decoded
once, its metadata parsed while decoding, normalised once, answered through one record (the
physical figures of :mod:`arcscan.geo` are computed per arc)."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_served_frame_crosses_each_step_once():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "call_path.py")], capture_output=True, text=True, timeout=300, check=True)
    callees = Counter(call.split(" -> ")[1] for call in json.loads(run.stdout)["request_calls"])  # file:function
    calls = {callee.rsplit(":", 1)[1] for callee in callees}
    assert {"decode_frames", "sky_of", "__call__", "model_view", "frame_record", "mask_png"} <= calls
    per_frame = {callee: n for callee, n in callees.items() if not callee.startswith("arcscan/geo/")}  # geo: per arc
    assert max(per_frame.values()) == 1, per_frame
    assert not {"timestamp", "ccd_background", "disc_mask"} & calls  # parsed at decoding; a profile's sky once per segmenter
