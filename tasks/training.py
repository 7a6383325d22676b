"""Finalist tasks: pick the top-k architectures and train each briefly on the held-out split.

`train_finalist` is a function of values (the finalist, the space dict, a `DataRef`, the
training section) and returns the finalist's row, its best weights (CPU tensors) and its
one-vs-rest ROC curves on the validation split. The flow saves them under
``<run>/finalists/<arch_id>.{json,pt,roc.json}`` (and ``plots/roc-<arch_id>.png``) as soon as
each finalist finishes, so a run killed during training retrains only the finalists it had not
done. Out of memory or a diverging loss fails that finalist's row (recorded, not retried). With
``data.test`` a finalist is also scored on the source's test part (never used to pick the winner).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE

from nas_lib.train.progress import BatchProgress
from tasks.config import TrainingConfig
from tasks.context import on_worker
from tasks.data_ref import DataRef
from tasks.retry import retry_transient
from tasks.spaces import space_from_dict

TRAINING_SCHEMA = pa.schema(
    [
        ("arch_id", pa.string()),
        ("arch", pa.string()),
        ("rank", pa.int64()),
        ("fitness", pa.float64()),
        ("params", pa.int64()),
        ("flops", pa.int64()),
        ("val_accuracy", pa.float64()),
        ("val_loss", pa.float64()),
        ("macro_f1", pa.float64()),
        ("epochs_run", pa.int64()),
        ("seconds", pa.float64()),
        ("state", pa.string()),
        ("error", pa.string()),
        ("device", pa.string()),
        ("weights", pa.string()),
        ("test_accuracy", pa.float64()),
        ("test_size", pa.int64()),
        ("macro_auc", pa.float64()),
        ("history", pa.string()),  # JSON: one {epoch, train_loss, val_loss, val_accuracy} per epoch
        ("class_scores", pa.string()),  # JSON: class names, per-class precision/recall/F1, confusion matrix
    ]
)


def select_finalists(search: pd.DataFrame, k: int) -> list[dict[str, Any]]:
    """The top-k distinct architectures by fitness in the ``07_search`` table (population and every generation)."""
    frame = search[search["state"] == "ok"].sort_values(["fitness", "arch_id"], ascending=[False, True])
    frame = frame.drop_duplicates("arch_id").head(k)
    return [{"arch_id": r.arch_id, "arch": r.arch, "rank": i + 1, "fitness": float(r.fitness)} for i, r in enumerate(frame.itertuples())]


def train_result(
    finalist: dict[str, Any],
    space: dict[str, Any],
    data: DataRef,
    training: TrainingConfig,
    seed: int,
    with_test: bool = False,
    device: str = "cpu",
    progress_every_s: float = 30.0,
    progress: Any = None,
) -> dict[str, Any]:
    """Trains one finalist; returns its row (``weights`` left for the flow to fill), its best
    weights (``state_dict``, CPU tensors, None when training failed) and ROC curves (``roc``).
    Within an epoch, progress is shown every `progress_every_s` seconds (`progress`: a
    `TrainingProgress` when None, or an object with the same three methods).

    The training is `train_architecture` under the run's protocol, the very function
    `ehnas bench train` fills ground-truth tables with, so a finalist's score and a table row
    mean the same thing.
    """
    from nas_lib.bench.train import TrainProtocol, train_architecture

    built, dataset = space_from_dict(space), data.load()
    t = training
    protocol = TrainProtocol(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, max_batches_per_epoch=t.max_batches_per_epoch, seed=seed)
    progress = progress or TrainingProgress(finalist["arch_id"], t.epochs)
    trained, result = train_architecture(
        built, finalist["arch"], dataset, protocol, device, progress=progress, on_batches=progress.batches, report_every_s=progress_every_s
    )
    progress.close()
    m = result.metrics
    row = {
        **finalist,
        "params": trained["params"],
        "flops": trained["flops"],
        "val_accuracy": m.get("val_accuracy", math.nan),
        "val_loss": m.get("val_loss", math.nan),
        "macro_f1": m.get("macro_f1", math.nan),
        "epochs_run": result.epochs_run,
        "seconds": result.seconds,
        "state": result.state,
        "error": result.error,
        "device": device,
        "weights": None,
        "history": json.dumps(result.history),
        "class_scores": _class_scores(m, dataset.class_names),
    }
    out: dict[str, Any] = {"row": row, "state_dict": None, "roc": None}
    if result.best_state_dict is not None:
        state = {k: v.detach().cpu() for k, v in result.best_state_dict.items()}
        model = built.build_model(built.from_string(finalist["arch"]), input_shape=tuple(dataset.input_shape), num_classes=dataset.num_classes)
        model.load_state_dict(state)
        curves, scores = _held_out_scores(model, dataset, with_test)
        row.update(scores)
        out.update(state_dict=state, roc=curves)
    return out


class TrainingProgress:
    """The training loop's callbacks, shown as one progress record ``train-<arch_id>`` (a Prefect
    artifact and a terminal bar, counted in batches over all planned epochs): within an epoch,
    batches done, images per second and the epoch's time left (`batches`); after each epoch, its
    losses and accuracy (`__call__`). Every report is a log line except an epoch's last batch,
    whose speed goes into that epoch's line. `close` completes the record when early stopping
    ended training before the last epoch."""

    def __init__(self, arch_id: str, epochs: int) -> None:
        from tasks import ui

        self.epochs, self.done, self.steps, self.speed = epochs, 0, 1, ""
        self.progress = ui.progress_start(f"train-{arch_id}", f"train {arch_id}")

    def batches(self, p: BatchProgress) -> None:
        from tasks import ui

        self.steps = max(self.steps, p.batches)
        if p.final:
            self.speed = f", {p.images_per_s:.0f} images/s"
        ui.progress_show(self.progress, (p.epoch - 1) * self.steps + p.batch, self.epochs * self.steps, p.line(), log=not p.final)

    def __call__(self, record: dict[str, Any]) -> None:
        from tasks import ui

        self.done = int(record["epoch"])
        detail = (
            f"epoch {self.done}/{self.epochs} done: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}, "
            f"val acc {record['val_accuracy']:.4f}{self.speed}, {record['seconds']:.1f} s"
        )
        ui.progress_show(self.progress, self.done * self.steps, self.epochs * self.steps, detail)

    def show(self, event: tuple[str, Any]) -> None:
        """Shows one event a `ProgressRelay` sent: ``("batches", BatchProgress)``, ``("epoch", record)`` or ``("close", None)``."""
        kind, value = event
        if kind == "batches":
            self.batches(value)
        elif kind == "epoch":
            self(value)
        else:
            self.close()

    def close(self) -> None:
        from tasks import ui

        if self.done < self.epochs:
            ui.progress_show(self.progress, 1, 1, f"stopped after epoch {self.done} of {self.epochs}")


class ProgressRelay:
    """`TrainingProgress`'s three callbacks in a child process: each sends its argument to the
    parent (`emit`), which shows it with `TrainingProgress.show`."""

    def __init__(self, emit: Callable[[Any], None]) -> None:
        self.emit = emit

    def batches(self, p: BatchProgress) -> None:
        self.emit(("batches", p))

    def __call__(self, record: dict[str, Any]) -> None:
        self.emit(("epoch", dict(record)))

    def close(self) -> None:
        self.emit(("close", None))


def train_in_child_body(
    finalist: dict[str, Any],
    space: dict[str, Any],
    data: DataRef,
    training: TrainingConfig,
    seed: int,
    with_test: bool,
    device: str,
    progress_every_s: float,
    emit: Callable[[Any], None],
) -> dict[str, Any]:
    """`train_result` as a child process runs it: progress goes back through `emit`."""
    return train_result(finalist, space, data, training, seed, with_test, device, progress_every_s, ProgressRelay(emit))


def _class_scores(metrics: dict[str, Any], class_names: Sequence[str]) -> str | None:
    """The per-class scores and confusion matrix of a trained finalist as JSON (None when it failed)."""
    if "per_class" not in metrics:
        return None
    return json.dumps(
        {"classes": [str(c) for c in class_names], "per_class": metrics["per_class"], "confusion_matrix": metrics.get("confusion_matrix")}
    )


def _held_out_scores(model: torch.nn.Module, data: Any, with_test: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """ROC curves on the validation split and the scores of the row (macro AUC, test accuracy when asked)."""
    from nas_lib.evaluation_curves import predict_proba, roc_curves

    probs = predict_proba(model, data.val_x)
    curves = roc_curves(data.val_y.numpy(), probs, data.class_names)
    out: dict[str, Any] = {"macro_auc": curves["macro_auc"]}
    if with_test and data.test_y is not None:
        predicted = predict_proba(model, data.test_x).argmax(axis=1)
        out.update(test_accuracy=float((predicted == data.test_y.numpy()).mean()), test_size=int(len(data.test_y)))
    return curves, out


@task(
    name="train-finalist",
    retries=1,
    retry_delay_seconds=1,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
    task_run_name="train-{finalist[arch_id]}",
)
def train_finalist(
    finalist: dict[str, Any],
    space: dict[str, Any],
    data: DataRef,
    training: TrainingConfig,
    seed: int,
    with_test: bool,
    device: str,
    progress_every_s: float = 30.0,
    timeout_s: float | None = None,
    torch_threads: int | None = None,
) -> dict[str, Any]:
    """Trains one finalist briefly and scores it on the held-out split (see `train_result`) on a
    device resolved where the task runs (`on_worker`); with `timeout_s`, in a child process killed
    when the limit passes (`tasks.child`)."""
    device, threads = on_worker(device, torch_threads)
    args = (finalist, space, data, training, seed, with_test, device, progress_every_s)
    if timeout_s is None:
        return train_result(*args)
    from tasks.child import run_in_child

    progress = TrainingProgress(finalist["arch_id"], training.epochs)
    what = f"train-{finalist['arch_id']}"
    key = "execution.training_timeout_s"
    return run_in_child(train_in_child_body, args, limit_s=timeout_s, key=key, what=what, on_event=progress.show, torch_threads=threads)


def training_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The ``08_training`` table: the finalists' rows ordered by rank."""
    return pd.DataFrame(sorted(rows, key=lambda r: r["rank"]))


def winner(training: pd.DataFrame) -> dict[str, Any] | None:
    """The trained finalist with the best validation accuracy (ties: better search rank) in the ``08_training`` table."""
    frame = training[training["state"] == "ok"].sort_values(["val_accuracy", "rank"], ascending=[False, True])
    return None if frame.empty else frame.iloc[0].to_dict()


def rebuild_winner(best: dict[str, Any], space: dict[str, Any], data: Any) -> torch.nn.Module:
    """The winner's network with its saved weights (``best["weights"]``), in eval mode.

    Raises:
        FileNotFoundError: the weights file is gone.
    """
    weights = Path(str(best.get("weights") or ""))
    if not weights.is_file():
        raise FileNotFoundError(f"weights of the winner {best.get('arch_id')} not found at {best.get('weights')!r}")
    built = space_from_dict(space)
    model = built.build_model(built.from_string(str(best["arch"])), input_shape=tuple(data.input_shape), num_classes=data.num_classes)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def winner_export_source(run_dir: str | Path) -> tuple[torch.nn.Module, Any, Any, Any]:
    """The run's winner rebuilt from its architecture and weights, its `ModelCard`, and the
    validation split as raw uint8 images with labels (what `export_bundle` checks against).

    Raises:
        FileNotFoundError: the run has no ``08_training`` step or the winner's weights are gone.
        ValueError: no finalist trained successfully.
    """
    from nas_lib.export_bundle import ModelCard, to_raw_images
    from nas_lib.steps import Step
    from tasks.run_folder import RunFolder

    run = RunFolder.open(run_dir)
    if not run.step_file(Step.TRAINING).exists():
        raise FileNotFoundError(f"{run_dir}: no {Step.TRAINING}.parquet; the run has not trained its finalists yet")
    best = winner(run.read_step(Step.TRAINING))
    if best is None:
        raise ValueError(f"{run_dir}: no finalist trained successfully, so there is no winner to export")
    data = DataRef.of(run.config()).load()
    model = rebuild_winner(best, run.space_dict(), data)
    card = ModelCard(tuple(data.class_names), tuple(data.input_shape), tuple(data.mean), tuple(data.std), str(best["arch"]), str(best["arch_id"]))
    return model, card, to_raw_images(data.val_x, data.mean, data.std), data.val_y.numpy()
