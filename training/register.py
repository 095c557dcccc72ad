"""Stage `register`: a new version of the registered model from this run, alias `challenger`.

    python training/register.py models reports/metrics.json reports/registered.json

Exports the model to ONNX, logs the checkpoint, the ONNX file and the params.yaml that holds
the scan/CRF settings to the training run, registers a version and points `challenger` at
it. Promotion to `champion` stays a deliberate step (``make promote``).
"""

import json
import sys
from pathlib import Path

from arcscan import mlops
from arcscan.config import load_settings
from arcscan.core.model import export_onnx, load_checkpoint


def main(models: Path, metrics_path: Path, out: Path) -> None:
    settings = load_settings()
    checkpoint = load_checkpoint(models / "model.pt")
    settings.segmenter(checkpoint)  # refuse settings that cannot serve this model before registering it
    onnx_path = export_onnx(checkpoint.model, checkpoint.model_args, models / "model.onnx")
    run_id = json.loads((models / "run.json").read_text())["run_id"]
    metrics = json.loads(metrics_path.read_text())
    metric = settings.register.metric

    mlops.configure()
    version = mlops.register_version(
        run_id,
        settings.register.model_name,
        checkpoint=models / "model.pt",
        onnx=onnx_path,
        files=[Path("params.yaml")],
        tags={},
    )
    record = {"model_name": version.name, "version": version.version, "run_id": run_id, "alias": "challenger", metric: metrics[metric]}
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    with mlops.failures_reported("register"):
        main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
