"""The core stands alone: reading, normalising and segmenting a frame loads none of the MLOps,
serving or operations stacks (what ``pip install arcscan`` without extras leaves out)."""

import json
import subprocess
import sys

FORBIDDEN = ("mlflow", "dvc", "ts", "psycopg2", "requests", "prometheus_client", "onnx")

SEGMENT_A_FRAME = """
import json, sys
from datetime import datetime, timezone
import arcscan
from arcscan.core.model import ModelConfig, build_model, save_checkpoint
from arcscan.core.synth import generate_minute
from arcscan.io.frames import decode_frames, encode_stream0

save_checkpoint(sys.argv[1], build_model(), ModelConfig())
settings = arcscan.load_settings("params.yaml")
segmenter = settings.segmenter(arcscan.load_checkpoint(sys.argv[1]))
frames, _ = generate_minute(seed=0, start=datetime(2026, 1, 1, 6, tzinfo=timezone.utc), n_frames=1)
(frame,) = decode_frames(encode_stream0(frames))
record = arcscan.frame_record(frame, segmenter(frame))
print(json.dumps({"record": sorted(record), "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def test_segmenting_a_frame_imports_no_mlops_serving_or_operations_package(tmp_path):
    run = subprocess.run([sys.executable, "-c", SEGMENT_A_FRAME, str(tmp_path / "model.pt")], capture_output=True, text=True, timeout=300, check=True)
    answer = json.loads(run.stdout.splitlines()[-1])
    assert "arc_fraction" in answer["record"]
    assert [name for name in FORBIDDEN if name in answer["modules"]] == []
    assert "torch" in answer["modules"]  # the check would pass vacuously if nothing ran


def test_importing_arcscan_loads_nothing_heavy():
    run = subprocess.run([sys.executable, "-c", "import sys, arcscan.cli, arcscan.errors; print(' '.join(sys.modules))"], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(run.stdout.split())
    assert {"torch", "numpy", "mlflow", "requests"}.isdisjoint(loaded)
