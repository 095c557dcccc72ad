"""MLOps: the MLflow tracking store, the model registry, promotion between its aliases and
the tracking-server launcher. Needs the ``[mlops]`` extra (mlflow, psycopg2 for PostgreSQL,
onnx for the exported model).

- :mod:`~arcscan.mlops.tracking`: where the store is, the experiment, MLflow errors explained
- :mod:`~arcscan.mlops.registry`: register a checkpoint as a version (alias ``challenger``),
  resolve and download a version
- :mod:`~arcscan.mlops.promotion`: move ``champion`` to a better challenger, or roll it back
- :mod:`~arcscan.mlops.server`: ``mlflow server`` command, environment, basic-auth config
"""

from arcscan.mlops.promotion import PromotionResult, promote, rollback
from arcscan.mlops.registry import CHALLENGER, CHAMPION, download_checkpoint, register_version, resolve
from arcscan.mlops.server import AUTH_APP, tracking_server_command, tracking_server_env, write_auth_config
from arcscan.mlops.tracking import (
    configure,
    default_backend_store_uri,
    errors_explained,
    experiment_id,
    failures_reported,
    mlflow_client,
    tracking_uri,
)

__all__ = [
    "AUTH_APP", "CHALLENGER", "CHAMPION", "PromotionResult", "configure", "default_backend_store_uri",
    "download_checkpoint", "errors_explained", "experiment_id", "failures_reported", "mlflow_client",
    "promote", "register_version", "resolve", "rollback", "tracking_server_command", "tracking_server_env",
    "tracking_uri", "write_auth_config",
]
