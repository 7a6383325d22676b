"""Registration task: the winner goes to MLflow (the row of ``09_registry``).

MLflow specifics live in `tasks.mlflow_pipeline` (over the primitives of `tasks.mlflow_registry`).
The task gets the config, the winner's ``08_training`` row and the searched space as values; the
run folder is what it logs (step files, plots, config), so this one task runs where the run
folder is. Registration is idempotent there: a rerun of the same run with the same weights adds
no model version.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import mlflow_pipeline
from tasks.config import PipelineConfig
from tasks.retry import retry_transient

REGISTRY_SCHEMA = pa.schema(
    [
        ("arch_id", pa.string()),
        ("arch", pa.string()),
        ("val_accuracy", pa.float64()),
        ("params", pa.int64()),
        ("model_name", pa.string()),
        ("version", pa.string()),
        ("alias", pa.string()),
        ("model_uri", pa.string()),
        ("tracking_uri", pa.string()),
        ("run_id", pa.string()),
        ("run_url", pa.string()),
        ("state", pa.string()),
        ("note", pa.string()),
    ]
)


def registry_row(
    config: PipelineConfig,
    best: dict[str, Any] | None,
    *,
    run_dir: str | Path,
    steps: Sequence[str | Path],
    space: dict[str, Any],
    skip: bool = False,
) -> dict[str, Any]:
    """Registers the winner `best` (unless `skip`) and returns the ``09_registry`` row.

    Args:
        config: the run's config.
        best: the winner's ``08_training`` row; None when no finalist trained.
        run_dir: the run folder whose files are logged with the run.
        steps: the step Parquet files to attach.
        space: the searched space as a dict (to rebuild the winner).
        skip: only build the row (``registry.enabled`` is false).
    """
    base: dict[str, Any] = {"model_name": config.model_name(), "alias": "champion", "tracking_uri": config.tracking_uri()}
    if best is None:
        return {**base, "state": "failed", "note": "no finalist trained successfully"}
    base.update(arch_id=best["arch_id"], arch=best["arch"], val_accuracy=float(best["val_accuracy"]), params=int(best["params"]))
    if skip:
        return {**base, "state": "skipped", "note": "registry.enabled is false"}
    out = mlflow_pipeline.register_pipeline_run(run_dir=Path(run_dir), config=config, winner=best, steps=[str(s) for s in steps], space=space)
    return {**base, **out}


@task(name="register-winner", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def register_winner(config: PipelineConfig, best: dict[str, Any] | None, run_dir: str, steps: list[str], space: dict[str, Any]) -> dict[str, Any]:
    """Logs the run to MLflow, registers the winner as ``ehnas-<dataset>@champion``; returns the ``09_registry`` row."""
    return registry_row(config, best, run_dir=run_dir, steps=steps, space=space)
