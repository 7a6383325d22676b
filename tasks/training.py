"""Finalist tasks: pick the top-k architectures and train each briefly on the held-out split.

Each finalist's row and weights are saved under ``<run>/finalists/<arch_id>.{json,pt}`` as soon
as it finishes, so a run killed during training retrains only the finalists it had not done.
Out of memory or a diverging loss fails that finalist's row (recorded, not retried).
Each trained finalist also gets one-vs-rest ROC curves on the validation split
(``finalists/<arch_id>.roc.json``, plotted in ``plots/roc-<arch_id>.png``) and, with
``data.test``, its accuracy on the source's test part (never used to pick the winner).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE

from nas_lib.artifacts import atomic_write_json, read_table, write_table
from tasks.context import load_config, load_data, load_space, step_path
from tasks.retry import retry_transient

TRAINING_SCHEMA = pa.schema([
    ("arch_id", pa.string()), ("arch", pa.string()), ("rank", pa.int64()), ("fitness", pa.float64()),
    ("params", pa.int64()), ("flops", pa.int64()), ("val_accuracy", pa.float64()), ("val_loss", pa.float64()),
    ("macro_f1", pa.float64()), ("epochs_run", pa.int64()), ("seconds", pa.float64()), ("state", pa.string()),
    ("error", pa.string()), ("device", pa.string()), ("weights", pa.string()),
    ("test_accuracy", pa.float64()), ("test_size", pa.int64()), ("macro_auc", pa.float64()),
])


def finalist_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "finalists"


def select_finalists(run_dir: str | Path) -> list[dict[str, Any]]:
    """The top-k distinct architectures by fitness over the population and every generation."""
    k = load_config(run_dir).training.top_k
    frame = read_table(step_path(run_dir, "07_search"))
    frame = frame[frame["state"] == "ok"].sort_values(["fitness", "arch_id"], ascending=[False, True])
    frame = frame.drop_duplicates("arch_id").head(k)
    return [{"arch_id": r.arch_id, "arch": r.arch, "rank": i + 1, "fitness": float(r.fitness)} for i, r in enumerate(frame.itertuples())]


def train_row(run_dir: str | Path, finalist: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """Trains one finalist (or reuses its saved row) and returns its `TRAINING_SCHEMA` row.

    The training is `train_architecture` under the run's protocol, the very function
    `ehnas bench train` fills ground-truth tables with, so a finalist's score and a table row
    mean the same thing.
    """
    from nas_lib.bench.train import TrainProtocol, train_architecture

    saved = finalist_dir(run_dir) / f"{finalist['arch_id']}.json"
    if saved.exists():
        return json.loads(saved.read_text(encoding="utf-8"))
    cfg, space, data = load_config(run_dir), load_space(run_dir), load_data(run_dir)
    t = cfg.training
    protocol = TrainProtocol(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr,
                             max_batches_per_epoch=t.max_batches_per_epoch, seed=cfg.seed)
    trained, result = train_architecture(space, finalist["arch"], data, protocol, device)
    weights = finalist_dir(run_dir) / f"{finalist['arch_id']}.pt"
    if result.best_state_dict is not None:
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save(result.best_state_dict, weights)
    m = result.metrics
    row = {**finalist, "params": trained["params"], "flops": trained["flops"], "val_accuracy": m.get("val_accuracy", math.nan),
           "val_loss": m.get("val_loss", math.nan), "macro_f1": m.get("macro_f1", math.nan), "epochs_run": result.epochs_run,
           "seconds": result.seconds, "state": result.state, "error": result.error, "device": device,
           "weights": str(weights) if result.best_state_dict is not None else None}
    if result.best_state_dict is not None:
        model = space.build_model(space.from_string(finalist["arch"]), input_shape=tuple(data.input_shape), num_classes=data.num_classes)
        model.load_state_dict(result.best_state_dict)
        row.update(_held_out_scores(run_dir, finalist["arch_id"], model, data, cfg.data.test))
    atomic_write_json(saved, row)
    return row


def _held_out_scores(run_dir: str | Path, arch_id: str, model: torch.nn.Module, data: Any, with_test: bool) -> dict[str, Any]:
    """ROC curves on the validation split (saved and plotted) and, when asked, test accuracy."""
    from nas_lib.evaluation_curves import predict_proba, roc_curves, write_roc_plot

    probs = predict_proba(model, data.val_x)
    curves = roc_curves(data.val_y.numpy(), probs, data.class_names)
    atomic_write_json(finalist_dir(run_dir) / f"{arch_id}.roc.json", curves)
    write_roc_plot(curves, Path(run_dir) / "plots" / f"roc-{arch_id}.png", title=f"ROC one-vs-rest, {arch_id}")
    out: dict[str, Any] = {"macro_auc": curves["macro_auc"]}
    if with_test and data.test_y is not None:
        predicted = predict_proba(model, data.test_x).argmax(axis=1)
        out.update(test_accuracy=float((predicted == data.test_y.numpy()).mean()), test_size=int(len(data.test_y)))
    return out


@task(name="train-finalist", retries=1, retry_delay_seconds=1, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE, task_run_name="train-{finalist[arch_id]}")
def train_finalist(run_dir: str, finalist: dict[str, Any], device: str) -> dict[str, Any]:
    """Trains one finalist briefly and scores it on the held-out split."""
    return train_row(run_dir, finalist, device)


def write_training(run_dir: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """``08_training.parquet`` ordered by rank."""
    frame = pd.DataFrame(sorted(rows, key=lambda r: r["rank"]))
    return write_table(step_path(run_dir, "08_training"), frame, TRAINING_SCHEMA)


def winner(run_dir: str | Path) -> dict[str, Any] | None:
    """The trained finalist with the best validation accuracy (ties: better search rank)."""
    frame = read_table(step_path(run_dir, "08_training"))
    frame = frame[frame["state"] == "ok"].sort_values(["val_accuracy", "rank"], ascending=[False, True])
    return None if frame.empty else frame.iloc[0].to_dict()


def winner_export_source(run_dir: str | Path) -> tuple[torch.nn.Module, Any, Any, Any]:
    """The run's winner rebuilt from its architecture and weights, its `ModelCard`, and the
    validation split as raw uint8 images with labels (what `export_bundle` checks against).

    Raises:
        FileNotFoundError: the run has no ``08_training`` step or the winner's weights are gone.
        ValueError: no finalist trained successfully.
    """
    from nas_lib.export_bundle import ModelCard, to_raw_images
    from tasks.context import load_data, load_space

    if not step_path(run_dir, "08_training").exists():
        raise FileNotFoundError(f"{run_dir}: no 08_training.parquet; the run has not trained its finalists yet")
    best = winner(run_dir)
    if best is None:
        raise ValueError(f"{run_dir}: no finalist trained successfully, so there is no winner to export")
    weights = Path(str(best.get("weights") or ""))
    if not weights.is_file():
        raise FileNotFoundError(f"{run_dir}: weights of the winner {best['arch_id']} not found at {weights}")
    space, data = load_space(run_dir), load_data(run_dir)
    model = space.build_model(space.from_string(str(best["arch"])), input_shape=tuple(data.input_shape), num_classes=data.num_classes)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    card = ModelCard(tuple(data.class_names), tuple(data.input_shape), tuple(data.mean), tuple(data.std), str(best["arch"]), str(best["arch_id"]))
    return model.eval(), card, to_raw_images(data.val_x, data.mean, data.std), data.val_y.numpy()
