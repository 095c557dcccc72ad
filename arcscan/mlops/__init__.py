"""MLOps: the MLflow model registry (versions, aliases, promotion) and the tracking-server
launcher. Needs the ``[mlops]`` extra (mlflow, psycopg2 for PostgreSQL, onnx)."""
