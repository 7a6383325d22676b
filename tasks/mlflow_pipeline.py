"""One call that logs a finished pipeline run to MLflow and registers its winner (what
`tasks.registry.register_winner` uses), built on the primitives of `tasks.mlflow_registry`."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from nas_lib.steps import Step
from tasks.mlflow_model import serving_info
from tasks.mlflow_registry import (
    CONFIG_TAG,
    DATA_TAG,
    EXPERIMENT,
    SCORE_TAG,
    client_for,
    finish_run,
    log_artifacts,
    log_finalist_run,
    log_metrics,
    promotion,
    register_champion,
    start_parent_run,
)
from tasks.run_folder import RunFolder


def register_pipeline_run(
    *, run_dir: Path, config: Any, winner: Mapping[str, Any], steps: Sequence[str | Path], space: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Logs a finished pipeline run to MLflow and registers its winner.

    Parent run named after the run (config as params, per-generation search metrics, step
    Parquet files, plots and config as artifacts), one nested run per finalist row of
    the training step's Parquet file, and the winner as ``config.model_name()`` (reused, not duplicated,
    when this run already registered it) with alias ``champion``, or ``challenger`` when
    ``registry.promote`` is ``if_better`` and the current champion validated better on the same
    data (`promotion`).

    Args:
        run_dir: the run folder.
        config: the run's `tasks.config.PipelineConfig`.
        winner: the winner's ``08_training`` row (``arch_id``, ``arch``, ``weights``, metrics).
        steps: step Parquet paths to attach (missing ones are skipped).
        space: the searched (pruned) space as a dict; None reads it from the run folder.

    Returns:
        ``model_uri``, ``version``, ``alias``, ``run_id`` (the registered model's run),
        ``run_url`` (None unless the tracking URI is an HTTP server), ``tracking_uri``, ``state``
        and ``note`` (what was registered and why it got its alias).
    """
    run = RunFolder(Path(run_dir))
    if space is None:
        space = run.space_dict()
    uri = config.tracking_uri()
    parent = start_parent_run(
        uri,
        EXPERIMENT,
        config.resolved_run_name(),
        _flatten(config.model_dump(mode="json")),
        {CONFIG_TAG: config.fingerprint(), "dataset": config.data.kind},
    )
    _log_search_progress(uri, parent, run.step_file(Step.SEARCH))
    log_artifacts(uri, parent, [*steps, run.config_file, run.data_file], artifact_path="steps")
    log_artifacts(uri, parent, [run.plots_dir])
    _log_finalists(uri, parent, run.step_file(Step.TRAINING))
    data = _dataset(config)
    _log_dataset(uri, parent, config, data)
    model, example, data_fingerprint = _rebuild_winner(winner, space, data)
    scalars = {k: winner[k] for k in ("val_accuracy", "val_loss", "macro_f1", "params", "flops") if k in winner}
    score = float(winner["val_accuracy"])
    if config.registry.promote == "always":
        take, why = True, "registry.promote is always"
    else:
        take, why = promotion(client_for(uri), config.model_name(), data_fingerprint, score)
    alias = "champion" if take else "challenger"
    out = register_champion(
        tracking_uri=uri,
        experiment=EXPERIMENT,
        parent_run_id=parent,
        model_name=config.model_name(),
        model=model,
        input_example=example,
        arch_id=str(winner["arch_id"]),
        config_hash=config.fingerprint(),
        metrics=scalars,
        params={"arch": winner["arch"], "dataset": config.data.kind, "run_name": config.resolved_run_name()},
        alias=alias,
        tags={DATA_TAG: data_fingerprint, SCORE_TAG: repr(score)},
        serving=serving_info(config, winner, space),
    )
    finish_run(uri, parent)
    done = "reused (these weights were already registered)" if out["reused"] else "registered"
    return {
        "model_uri": out["model_uri"],
        "version": out["version"],
        "alias": alias,
        "run_id": out["run_id"],
        "tracking_uri": uri,
        "run_url": _run_url(uri, parent),
        "state": "ok",
        "note": f"version {out['version']} {done}; {why}",
    }


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
    """One nested run per finalist: per-epoch history, per-class scores (F1 as metrics, all of
    them in ``metrics.json``) and the confusion matrix (``confusion_matrix.png``)."""
    import pandas as pd

    if not training_file.exists():
        return
    for row in pd.read_parquet(training_file).to_dict("records"):
        params = {k: row.get(k) for k in ("arch", "rank", "fitness", "params", "flops", "epochs_run", "device", "state", "error")}
        metrics: dict[str, Any] = {k: row.get(k) for k in ("val_accuracy", "val_loss", "macro_f1", "seconds", "fitness")}
        classes = json.loads(row["class_scores"]) if isinstance(row.get("class_scores"), str) else None
        if classes:
            metrics.update(per_class_metrics(classes), per_class=classes["per_class"], confusion_matrix=classes["confusion_matrix"])
        history = json.loads(row["history"]) if isinstance(row.get("history"), str) else []
        run_id = log_finalist_run(uri, parent, str(row["arch_id"]), params, metrics, history)
        if classes and classes.get("confusion_matrix"):
            client_for(uri).log_figure(run_id, confusion_figure(classes), "confusion_matrix.png")


def per_class_metrics(classes: Mapping[str, Any]) -> dict[str, float]:
    """``val_f1_<class>`` (also precision and recall) per class, names made MLflow-safe."""
    out = {}
    for score, values in classes["per_class"].items():
        for name, value in zip(classes["classes"], values):
            out[f"val_{score}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', str(name))}"] = float(value)
    return out


def confusion_figure(classes: Mapping[str, Any]) -> Any:
    """The confusion matrix (rows: true class, columns: predicted) as a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix, names = np.asarray(classes["confusion_matrix"]), classes["classes"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(names), 0.8 + 0.45 * len(names)))
    ax.imshow(matrix, cmap="Blues")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="true")
    ax.set_xticklabels(names, rotation=90)
    ax.set_yticklabels(names)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _dataset(config: Any) -> Any:
    from tasks.data_ref import DataRef

    return DataRef.of(config).load()


def _log_dataset(uri: str, run_id: str, config: Any, data: Any) -> None:
    """The training split as the run's dataset input (``mlflow.data``): name, source, the data
    fingerprint as digest, shapes; no image is copied."""
    from mlflow.data.numpy_dataset import from_numpy
    from mlflow.entities import DatasetInput, InputTag

    client = client_for(uri)
    inputs = client.get_run(run_id).inputs
    if inputs is not None and any(d.dataset.digest == data.fingerprint[:36] for d in inputs.dataset_inputs):
        return  # logged by an earlier attempt of this run
    with warnings.catch_warnings():
        # a plain path matches two of MLflow's source types, and it warns that it picked one; the source is only a label here
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways", category=UserWarning)
        dataset = from_numpy(
            data.train_x.numpy(),
            targets=data.train_y.numpy(),
            source=str(config.data.path or config.data.kind),
            name=config.data.kind,
            digest=data.fingerprint[:36],
        )
        entity = dataset._to_mlflow_entity()
    client.log_inputs(run_id, [DatasetInput(entity, tags=[InputTag("mlflow.data.context", "training")])])


def _rebuild_winner(winner: Mapping[str, Any], space: Mapping[str, Any], data: Any) -> tuple[nn.Module, np.ndarray, str]:
    """The winner's network with its trained weights, two validation images as example, and the
    data fingerprint (it covers the split, so equal fingerprints mean the same validation set)."""
    from tasks.training import rebuild_winner

    return rebuild_winner(dict(winner), dict(space), data), data.val_x[:2].numpy(), data.fingerprint


def _run_url(uri: str, run_id: str) -> str | None:
    if not uri.startswith(("http://", "https://")):
        return None
    experiment_id = client_for(uri).get_run(run_id).info.experiment_id
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
