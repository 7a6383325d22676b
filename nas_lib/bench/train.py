"""Ground truth for any space and dataset: train a seeded sample of architectures under one
recorded protocol and write one table row per architecture the moment it finishes.

The table is a CSV (``arch``, ``arch_id``, ``depth``, ``params``, ``flops``, ``val_accuracy``,
``history``, ``seconds``, ``state``, ``error``, ``train_seed``, ``test_accuracy``, ``role``) with its
protocol beside it in ``<table>.protocol.json``. ``history`` is the validation accuracy after every
epoch of one schedule (a learning curve), ``test_accuracy`` the returned (best-validation-epoch)
network on the source's test split (empty where the data has none), and ``role`` says whether a row
is a ``sample`` of the space or a ``reference`` network the user would try instead. It is what `ehnas bench proxies|pruning|search --space hybrid --table`
read, exactly as they read the NB201 table. A rerun with the same protocol resumes: rows already
in the file are not trained again; a different protocol is refused (it would mix two notions of
"good" in one table).

The protocol is the pipeline's own finalist training (`train_architecture` is what the pipeline's
training task calls), so a table row and a finalist's score mean the same thing.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nas_lib.artifacts import atomic_write_json
from nas_lib.space.base import SearchSpace
from nas_lib.train.progress import OnBatches

if TYPE_CHECKING:
    from nas_lib.fidelity.training import RungProtocol

COLUMNS = (
    "arch", "arch_id", "depth", "params", "flops", "val_accuracy", "history", "seconds", "state", "error", "train_seed", "test_accuracy", "role",
)  # fmt: skip
SAMPLE, REFERENCE = "sample", "reference"
METRIC = "val_accuracy"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainProtocol:
    """Everything that decides an architecture's trained score, recorded beside its table.

    Attributes:
        space: the space in JSON form (``{"name": "hybrid", "constraints": {...}}``); the sample
            is drawn from it.
        data: `load_dataset` arguments: ``kind``, ``path``, ``image_size``, ``max_items``,
            ``val_fraction``, ``seed``.
        epochs, batch_size, lr, max_batches_per_epoch: the `TrainConfig` budget (weight decay,
            patience and label smoothing stay at `TrainConfig`'s defaults).
        seed: seeds the weight initialisation and the training shuffle (the pipeline's ``seed``).
        patience: early-stopping patience in epochs (None: `TrainConfig`'s default); a table of
            learning curves sets it to ``epochs`` so every row runs its whole schedule.
    """

    space: dict[str, Any] = field(default_factory=dict)  # empty where only the budget matters (a run's finalists)
    data: dict[str, Any] = field(default_factory=dict)
    epochs: int = 2
    batch_size: int = 64
    lr: float = 3e-3
    max_batches_per_epoch: int | None = None
    seed: int = 0
    patience: int | None = None
    optimizer: str = field(default="adamw+cosine", init=False)  # what nas_lib.train runs; recorded for readers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainProtocol:
        """The protocol of a saved dict; fields added since it was written take their defaults."""
        return cls(**{k: v for k, v in data.items() if k != "optimizer"})

    def with_seed(self, seed: int) -> TrainProtocol:
        return replace(self, seed=seed)

    def rung_protocol(self, seed: int | None = None) -> RungProtocol:
        """The pipeline's rung protocol of this training (the long schedule over `epochs`), under
        `seed` (default: the table's); trained straight to `epochs` it gives this table's curves."""
        from nas_lib.fidelity.training import RungProtocol

        return RungProtocol(
            horizon=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            max_batches_per_epoch=self.max_batches_per_epoch,
            seed=self.seed if seed is None else seed,
        )


def build_space(space: dict[str, Any]) -> SearchSpace:
    """A space from its JSON form (``{"name": ..., "constraints": ...}`` or ``{"name": "nb201"}``)."""
    from nas_lib.space import HybridConstraints, get_space

    if space["name"] == "hybrid":
        return get_space("hybrid", constraints=HybridConstraints.from_dict(space.get("constraints", {})))
    return get_space(space["name"], **{k: v for k, v in space.items() if k != "name"})


def load_protocol_data(protocol: TrainProtocol) -> Any:
    """The protocol's `ImageDataset`."""
    from nas_lib.data.datasets import load_reference

    return load_reference(protocol.data)


def train_architecture(
    space: SearchSpace,
    arch: str,
    data: Any,
    protocol: TrainProtocol,
    device: str = "cpu",
    progress: Callable[[dict[str, Any]], None] | None = None,
    role: str = SAMPLE,
    on_batches: OnBatches | None = None,
    report_every_s: float = 30.0,
) -> tuple[dict[str, Any], Any]:
    """Builds `arch` with the protocol's seed, trains it under the protocol and returns its
    table row and the `TrainResult` (for the weights and the full metrics). `progress`,
    `on_batches` and `report_every_s` go to `train_and_evaluate`."""
    from nas_lib.space.stats import count_flops, count_parameters
    from nas_lib.train import TrainConfig, train_and_evaluate

    spec = space.from_string(arch)
    torch.manual_seed(protocol.seed)
    model = space.build_model(spec, input_shape=tuple(data.input_shape), num_classes=data.num_classes)
    params, flops = count_parameters(model), count_flops(model, tuple(data.input_shape))
    cfg = TrainConfig(
        epochs=protocol.epochs,
        batch_size=protocol.batch_size,
        lr=protocol.lr,
        seed=protocol.seed,
        max_batches_per_epoch=protocol.max_batches_per_epoch,
    )
    if protocol.patience is not None:
        cfg = replace(cfg, patience=protocol.patience)
    result = train_and_evaluate(model, data, cfg, device, progress, on_batches, report_every_s)
    test = test_accuracy(model, data, protocol.batch_size) if result.ok else math.nan
    row = {
        "arch": arch,
        "arch_id": space.arch_id(spec),
        "depth": int(getattr(spec, "depth", 0)),
        "params": params,
        "flops": flops,
        METRIC: float(result.metrics.get("val_accuracy", math.nan)) if result.ok else math.nan,
        "history": json.dumps([round(h["val_accuracy"], 5) for h in result.history]),
        "seconds": round(result.seconds, 3),
        "state": result.state,
        "error": result.error,
        "train_seed": protocol.seed,
        "test_accuracy": test,
        "role": role,
    }
    return row, result


@torch.no_grad()
def test_accuracy(model: torch.nn.Module, data: Any, batch_size: int = 256) -> float:
    """Accuracy of `model` (left on its device, in eval mode) on the data's test split; NaN
    when the source has none."""
    if data.test_x is None:
        return math.nan
    device = next(model.parameters()).device
    model.eval()
    hits = 0
    for start in range(0, len(data.test_y), batch_size):
        logits = model(data.test_x[start : start + batch_size].to(device))
        hits += int((logits.argmax(dim=1).cpu() == data.test_y[start : start + batch_size]).sum())
    return hits / len(data.test_y)


def nearest_neighbour_accuracy(data: Any) -> dict[str, float]:
    """The floor a trained network must clear: 1-nearest-neighbour on raw (normalised) pixels,
    fitted on the training split, scored on validation and test (no training at all)."""
    train = data.train_x.flatten(1)
    out = {}
    for part in ("val", "test"):
        x, y = getattr(data, f"{part}_x"), getattr(data, f"{part}_y")
        if x is None:
            continue
        nearest = torch.cdist(x.flatten(1), train).argmin(dim=1)
        out[f"{part}_accuracy"] = float((data.train_y[nearest] == y).double().mean())
    return out


def stratified_sample(space: SearchSpace, n: int, seed: int) -> list[str]:
    """`n` distinct architectures, depths taken in turn (a uniform draw of the whole space is
    almost always of the greatest depth), each uniform within its depth; seeded."""
    rng = np.random.default_rng(seed)
    sizes = space.size_by_depth()  # type: ignore[attr-defined]
    depths = [d for d, count in sizes.items() if count]
    out: dict[str, None] = {}
    tries = 0
    while len(out) < n and tries < 20 * n:
        depth = depths[tries % len(depths)]
        out[space.to_string(space.sample(rng, depth=depth))] = None  # type: ignore[call-arg]
        tries += 1
    return list(out)


# -- the table file ------------------------------------------------------------------------------------
def protocol_path(table: str | Path) -> Path:
    table = Path(table)
    return table.with_name(table.name + ".protocol.json")


def read_rows(table: str | Path) -> list[dict[str, Any]]:
    """Rows already written (a torn last line from a killed run is dropped)."""
    path = Path(table)
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if r.get("state") in ("ok", "failed") and r.get("train_seed") not in (None, "")]


def open_table(table: str | Path, protocol: TrainProtocol) -> list[dict[str, Any]]:
    """Creates the table (header and protocol) or checks that an existing one has this protocol;
    returns the rows already there.

    Raises:
        ValueError: the table was started under another protocol.
    """
    path, proto = Path(table), protocol_path(table)
    if proto.exists():
        saved = TrainProtocol.from_dict(json.loads(proto.read_text(encoding="utf-8"))).to_dict()
        mine = json.loads(json.dumps(protocol.to_dict()))  # as saved: tuples become lists
        if saved != mine:
            diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
            raise ValueError(
                f"{path} was trained under another protocol (differs in: {', '.join(diff)}); use a new --out, or the protocol in {proto.name}"
            )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(proto, protocol.to_dict())
    rows = read_rows(path)
    _rewrite(path, rows)  # drops a torn line, writes the header of a new file
    return rows


def _rewrite(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def write_floor(table: str | Path, protocol: TrainProtocol) -> dict[str, float]:
    """Writes (once) ``<table>.floor.json``: the 1-NN pixel baseline on the protocol's data."""
    path = Path(table).with_name(Path(table).name + ".floor.json")
    if path.exists():
        return {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if k != "method"}
    floor = nearest_neighbour_accuracy(load_protocol_data(protocol))
    atomic_write_json(path, {"method": "1-nearest-neighbour on normalised pixels, no training", **floor})
    return floor


def append_row(table: str | Path, row: dict[str, Any]) -> None:
    """Appends one row and forces it to disk (a kill loses at most the row being written)."""
    with Path(table).open("a", newline="", encoding="utf-8") as fh:
        csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore").writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


# -- workers -------------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


class WorkerFailed(RuntimeError):
    """A worker process could not start or ended abruptly; the message is the worker's own error."""


def _init_worker(protocol: dict[str, Any], device: str, threads: int) -> None:
    """Loads the space and the data once per worker; a failure is kept for the first task to raise
    (an initializer that raises only tells the parent ``BrokenProcessPool``)."""
    try:
        torch.set_num_threads(threads)
        proto = TrainProtocol.from_dict(protocol)
        _WORKER.update(protocol=proto, device=device, space=build_space(proto.space), data=load_protocol_data(proto))
    except Exception as err:  # noqa: BLE001 - raised, with its message, by `_train_in_worker`
        _WORKER["failed"] = f"worker could not start: {type(err).__name__}: {err}"


def _train_in_worker(arch: str, role: str = SAMPLE) -> dict[str, Any]:
    if "failed" in _WORKER:
        raise WorkerFailed(_WORKER["failed"])
    start = time.perf_counter()
    seed = _WORKER["protocol"].seed
    try:
        row, _ = train_architecture(_WORKER["space"], arch, _WORKER["data"], _WORKER["protocol"], _WORKER["device"], role=role)
        return row
    except Exception as err:  # noqa: BLE001 - one broken architecture is a failed row, not a stopped table
        return {
            "arch": arch,
            "arch_id": "",
            "depth": 0,
            "params": 0,
            "flops": 0,
            METRIC: math.nan,
            "history": "[]",
            "seconds": round(time.perf_counter() - start, 3),
            "state": "failed",
            "error": f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}",
            "train_seed": seed,
            "test_accuracy": math.nan,
            "role": role,
        }


def train_table(
    protocol: TrainProtocol,
    archs: Sequence[str],
    table: str | Path,
    workers: int = 1,
    device: str = "cpu",
    threads: int = 1,
    progress: Progress | None = None,
    references: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Trains every architecture not yet in `table`, in `workers` processes, appending each row as
    it finishes; returns all rows of the table.

    Args:
        protocol: how every architecture is trained (one training seed per table: the same
            sample under another seed, in another table, measures the noise floor).
        archs: architecture strings of ``protocol.space``.
        table: the CSV (created with its protocol file, or resumed).
        workers: worker processes (each loads the data once; on CUDA they share the device, so
            several architectures train on one GPU at once).
        device: ``cpu``, ``cuda`` or ``cuda:N``; resolved before anything starts.
        threads: torch CPU threads per worker.
        progress: called with one line per finished row.
        references: architectures a user would train instead of searching (a plain residual
            CNN); trained first, under the same protocol, as rows of role ``reference``.

    Raises:
        DatasetError: the protocol's data is unusable (checked here, before any worker starts).
        WorkerFailed: a worker could not start or died; the message is its own error.
    """
    from nas_lib.train.device import resolve_device

    device = resolve_device(device)  # refuses a device this machine lacks, before any work
    rows = open_table(table, protocol)
    done = {r["arch"] for r in rows}
    roles = {**{a: REFERENCE for a in references}, **{a: SAMPLE for a in archs if a not in references}}
    todo = [a for a in roles if a not in done]
    if progress:
        progress(f"{len(done)} rows already in {table}; {len(todo)} to train on {device} with {workers} worker(s)")
    if not todo:
        return read_rows(table)
    load_protocol_data(protocol)  # checked here once: a DatasetError says what is wrong before any worker starts
    start = time.perf_counter()
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(protocol.to_dict(), device, threads)
    ) as pool:
        pending: set[Future[dict[str, Any]]] = {pool.submit(_train_in_worker, a, roles[a]) for a in todo}
        finished = 0
        while pending:
            ready, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in ready:
                row = _result(future)
                append_row(table, row)
                finished += 1
                if progress:
                    progress(
                        f"[{finished}/{len(todo)}] {row['state']} {METRIC} {float(row[METRIC]):.4f} depth {row['depth']} "
                        f"params {row['params']} {row['seconds']} s (elapsed {time.perf_counter() - start:.0f} s)"
                    )
    return read_rows(table)


def _result(future: Future[dict[str, Any]]) -> dict[str, Any]:
    """A worker's row; a worker that died is a `WorkerFailed` that says so (not ``BrokenProcessPool``)."""
    try:
        return future.result()
    except BrokenProcessPool as err:
        raise WorkerFailed(f"a worker process ended abruptly (killed, out of memory, or a crash in native code): {err}") from None


def load_table(table: str | Path) -> dict[str, float]:
    """``{arch: val_accuracy}`` of the table's ok sampled rows (reference rows are not part of the
    space's sample)."""
    return {
        r["arch"]: float(r[METRIC])
        for r in read_rows(table)
        if r["state"] == "ok" and r[METRIC] not in ("", "nan") and r.get("role") in (None, "", SAMPLE)
    }


def read_protocol(table: str | Path) -> TrainProtocol:
    """The protocol a table was trained under.

    Raises:
        ValueError: the table has no protocol file (it was not written by `train_table`), or the
            file is damaged.
    """
    proto = protocol_path(table)
    if not proto.exists():
        raise ValueError(f"{table}: no {proto.name} beside it; a hybrid table comes from `ehnas bench train`")
    try:
        return TrainProtocol.from_dict(json.loads(proto.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as err:  # truncated JSON, or fields this version does not know
        raise ValueError(f"{proto}: not a readable training protocol ({type(err).__name__}: {err})") from None


def protocol_batch(protocol: TrainProtocol, n: int = 32, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch the pipeline's proxies would score on for this protocol's data (its
    `data.proxy_batch` default is 32, its seed the protocol's)."""
    from nas_lib.data.arrays import training_batch

    return training_batch(load_protocol_data(protocol), n, protocol.seed if seed is None else seed)
