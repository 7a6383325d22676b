"""One call that logs a finished pipeline run to MLflow and registers its winner (what
`tasks.registry.register_winner` uses), built on the primitives of `tasks.mlflow_registry`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tasks.mlflow_model import serving_info
from tasks.mlflow_registry import (
    CONFIG_TAG, DATA_TAG, EXPERIMENT, SCORE_TAG, client_for, finish_run, log_artifacts, log_finalist_run, log_metrics, promotion,
    register_champion, start_parent_run,
)


def register_pipeline_run(*, run_dir: Path, config: Any, winner: Mapping[str, Any], steps: Sequence[str | Path]) -> dict[str, Any]:
    """Logs a finished pipeline run to MLflow and registers its winner.

    Parent run named after the run (config as params, per-generation search metrics, step
    Parquet files, plots and config as artifacts), one nested run per finalist row of
    ``08_training.parquet``, and the winner as ``config.model_name()`` (reused, not duplicated,
    when this run already registered it) with alias ``champion``, or ``challenger`` when
    ``registry.promote`` is ``if_better`` and the current champion validated better on the same
    data (`promotion`).

    Args:
        run_dir: the run folder.
        config: the run's `tasks.config.PipelineConfig`.
        winner: the winner's ``08_training`` row (``arch_id``, ``arch``, ``weights``, metrics).
        steps: step Parquet paths to attach (missing ones are skipped).

    Returns:
        ``model_uri``, ``version``, ``alias``, ``run_id`` (the registered model's run),
        ``run_url`` (None unless the tracking URI is an HTTP server), ``tracking_uri``, ``state``
        and ``note`` (what was registered and why it got its alias).
    """
    run_dir = Path(run_dir)
    uri = config.tracking_uri()
    parent = start_parent_run(uri, EXPERIMENT, config.resolved_run_name(), _flatten(config.model_dump(mode="json")),
                              {CONFIG_TAG: config.fingerprint(), "dataset": config.data.kind})
    _log_search_progress(uri, parent, run_dir / "07_search.parquet")
    log_artifacts(uri, parent, [*steps, run_dir / "config.json"], artifact_path="steps")
    log_artifacts(uri, parent, [run_dir / "plots"])
    _log_finalists(uri, parent, run_dir / "08_training.parquet")
    model, example, data_fingerprint = _rebuild_winner(run_dir, winner)
    scalars = {k: winner[k] for k in ("val_accuracy", "val_loss", "macro_f1", "params", "flops") if k in winner}
    score = float(winner["val_accuracy"])
    if config.registry.promote == "always":
        take, why = True, "registry.promote is always"
    else:
        take, why = promotion(client_for(uri), config.model_name(), data_fingerprint, score)
    alias = "champion" if take else "challenger"
    out = register_champion(
        tracking_uri=uri, experiment=EXPERIMENT, parent_run_id=parent, model_name=config.model_name(), model=model,
        input_example=example, arch_id=str(winner["arch_id"]), config_hash=config.fingerprint(),
        metrics=scalars, params={"arch": winner["arch"], "dataset": config.data.kind, "run_name": config.resolved_run_name()},
        alias=alias, tags={DATA_TAG: data_fingerprint, SCORE_TAG: repr(score)}, serving=serving_info(run_dir, config, winner),
    )
    finish_run(uri, parent)
    done = "reused (these weights were already registered)" if out["reused"] else "registered"
    return {"model_uri": out["model_uri"], "version": out["version"], "alias": alias,
            "run_id": out["run_id"], "tracking_uri": uri, "run_url": _run_url(uri, parent), "state": "ok",
            "note": f"version {out['version']} {done}; {why}"}


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"training.epochs": 2, ...}`` (MLflow params are flat)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        flat.update(_flatten(value, name + ".") if isinstance(value, Mapping) else {name: value})
    return flat


def _log_search_progress(uri: str, run_id: str, search_file: Path) -> None:
    """Best, mean and best-so-far fitness per generation (logged once per parent run)."""
    import pandas as pd

    client = client_for(uri)
    if not search_file.exists() or "search_best_fitness" in client.get_run(run_id).data.metrics:
        return
    frame = pd.read_parquet(search_file)
    frame = frame[frame["state"] == "ok"] if "state" in frame else frame
    per_gen = frame.groupby("generation")["fitness"].agg(["max", "mean"]).sort_index()
    best_so_far = per_gen["max"].cummax()
    for generation, row in per_gen.iterrows():
        metrics = {"search_best_fitness": row["max"], "search_mean_fitness": row["mean"], "search_best_so_far": best_so_far[generation]}
        log_metrics(client, run_id, metrics, int(generation))


def _log_finalists(uri: str, parent: str, training_file: Path) -> None:
    import pandas as pd

    if not training_file.exists():
        return
    for row in pd.read_parquet(training_file).to_dict("records"):
        params = {k: row.get(k) for k in ("arch", "rank", "fitness", "params", "flops", "epochs_run", "device", "state", "error")}
        metrics = {k: row.get(k) for k in ("val_accuracy", "val_loss", "macro_f1", "seconds", "fitness")}
        log_finalist_run(uri, parent, str(row["arch_id"]), params, metrics, row.get("history") or [])


def _rebuild_winner(run_dir: Path, winner: Mapping[str, Any]) -> tuple[nn.Module, np.ndarray, str]:
    """The winner's network with its trained weights, two validation images as example, and the
    data fingerprint (it covers the split, so equal fingerprints mean the same validation set)."""
    from tasks.context import load_data, load_space

    space, data = load_space(run_dir), load_data(run_dir)
    model = space.build_model(space.from_string(str(winner["arch"])), input_shape=tuple(data.input_shape), num_classes=data.num_classes)
    weights = winner.get("weights")
    if not weights or not Path(weights).exists():
        raise FileNotFoundError(f"weights of the winner {winner.get('arch_id')} not found at {weights!r}")
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval(), data.val_x[:2].numpy(), data.fingerprint


def _run_url(uri: str, run_id: str) -> str | None:
    if not uri.startswith(("http://", "https://")):
        return None
    experiment_id = client_for(uri).get_run(run_id).info.experiment_id
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
