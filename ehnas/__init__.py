"""The `ehnas` command line. It sits beside flows/ and tasks/ so that nas_lib stays a plain
library (no Prefect, no MLflow)."""
