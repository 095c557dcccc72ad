"""Stage `train`: PNU-train the ResNet18 arc classifier, tracked as an MLflow run.

    python training/train.py patches/train.npz models

Writes ``models/model.pt`` (state_dict, model arguments and the patches' normalisation), ``models/run.json`` (the MLflow run
that the evaluate and register stages continue) and ``reports/train_history.json``.
"""

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import mlflow
import yaml

from arcscan import mlops
from arcscan.config import load_settings
from arcscan.core.model import save_checkpoint
from arcscan.core.patches import PatchSet
from arcscan.core.train import train_pnu


def provenance_tags() -> dict[str, str]:
    """The code and data versions a run was trained from."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    data_md5 = yaml.safe_load(Path("data.dvc").read_text())["outs"][0]["md5"] if Path("data.dvc").exists() else "none"
    return {"git_commit": commit or "unknown", "git_dirty": str(bool(dirty)).lower(), "data_dvc_md5": data_md5}


def main(train_path: Path, out: Path) -> None:
    settings = load_settings()
    config, model_config = settings.train, settings.model
    patches = PatchSet.load(train_path)

    mlops.configure()
    with mlflow.start_run(experiment_id=mlops.experiment_id()) as run:
        mlflow.set_tags(provenance_tags())
        mlflow.log_params({f"train.{k}": v for k, v in asdict(config).items()})
        mlflow.log_params({f"patches.{k}": v for k, v in asdict(settings.patches).items()})
        mlflow.log_params({f"model.{k}": v for k, v in asdict(model_config).items()})
        mlflow.log_params({f"augment.{k}": v for k, v in asdict(settings.augment).items()})

        def log_epoch(record: dict) -> None:
            mlflow.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=record["epoch"])

        result = train_pnu(patches, config, model_config, settings.augment, on_epoch=log_epoch)
        mlflow.log_params({"prior_used": round(result.prior, 4), "eta_used": round(result.eta, 4)})
        mlflow.log_metric("train_seconds", result.seconds)

    save_checkpoint(out / "model.pt", result.model, model_config, settings.preprocess)
    (out / "run.json").write_text(json.dumps({"run_id": run.info.run_id}) + "\n")
    Path("reports").mkdir(exist_ok=True)
    history = {"prior": result.prior, "eta": result.eta, "seconds": result.seconds, "epochs": result.history}
    Path("reports/train_history.json").write_text(json.dumps(history, indent=2) + "\n")
    print(f"trained in {result.seconds:.1f} s (prior {result.prior:.3f}, eta {result.eta:.3f}); run {run.info.run_id}")


if __name__ == "__main__":
    with mlops.failures_reported("train"):
        main(Path(sys.argv[1]), Path(sys.argv[2]))
