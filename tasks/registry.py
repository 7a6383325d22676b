"""Registration task: the winner goes to MLflow (``09_registry.parquet``).

MLflow specifics live in `tasks.mlflow_pipeline` (over the primitives of `tasks.mlflow_registry`);
this task gathers the run's files and hands them over. Registration is idempotent there: a rerun
of the same run with the same weights adds no model version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from nas_lib.artifacts import write_table
from nas_lib.report import write_plots
from tasks.context import STEPS, load_config, step_path
from tasks.retry import retry_transient
from tasks.training import winner

REGISTRY_SCHEMA = pa.schema([
    ("arch_id", pa.string()), ("arch", pa.string()), ("val_accuracy", pa.float64()), ("params", pa.int64()),
    ("model_name", pa.string()), ("version", pa.string()), ("alias", pa.string()), ("model_uri", pa.string()),
    ("tracking_uri", pa.string()), ("run_id", pa.string()), ("run_url", pa.string()), ("state", pa.string()), ("note", pa.string()),
])


def registry_row(run_dir: str | Path, skip: bool = False) -> dict[str, Any]:
    """Registers the winner (unless `skip`) and returns the ``09_registry`` row."""
    cfg, best = load_config(run_dir), winner(run_dir)
    base = {"model_name": cfg.model_name(), "alias": "champion", "tracking_uri": cfg.tracking_uri()}
    if best is None:
        return {**base, "state": "failed", "note": "no finalist trained successfully"}
    base.update(arch_id=best["arch_id"], arch=best["arch"], val_accuracy=float(best["val_accuracy"]), params=int(best["params"]))
    if skip:
        return {**base, "state": "skipped", "note": "registry.enabled is false"}
    try:
        from tasks import mlflow_pipeline
    except ImportError:
        return {**base, "state": "skipped", "note": "MLflow is not installed"}
    write_plots(run_dir)
    return {**base, **mlflow_pipeline.register_pipeline_run(run_dir=Path(run_dir), config=cfg, winner=best, steps=[str(step_path(run_dir, s)) for s in STEPS])}


@task(name="register-winner", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def register_winner(run_dir: str, skip: bool = False) -> str:
    """Logs the run to MLflow, registers the winner as ``ehnas-<dataset>@champion``; writes ``09_registry.parquet``."""
    return str(write_table(step_path(run_dir, "09_registry"), [registry_row(run_dir, skip)], REGISTRY_SCHEMA))
