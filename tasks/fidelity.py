"""Rung task: one task trains one batch of (architecture, budget) rungs and returns their scores.

The task is a function of values: the rung setup (`RungSetup`: a data reference, the fidelity
settings and the training protocol), the space as its JSON dict and the work, each item with the
checkpoint it continues from (bytes, or None to start at epoch 1). It returns one evaluation
record per rung and the checkpoint to continue from, so the flow, the only writer of the store
and the checkpoint folder, keeps both and a worker on another machine needs neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from nas_lib.evaluation import EvalRecord
from nas_lib.fidelity.plan import FidelitySpec, rung_key
from nas_lib.fidelity.training import RungProtocol, build_seeded, train_to_budget
from tasks.context import on_worker
from tasks.data_ref import DataRef
from tasks.evaluation import device_slot
from tasks.retry import retry_transient
from tasks.spaces import space_from_dict

RungWork = tuple[str, int, bytes | None]  # architecture, budget, checkpoint to continue (or None)


class RungSetup(BaseModel):
    """Everything a rung's score depends on besides the architecture and the budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: DataRef
    kind: str
    budgets: tuple[int, ...]
    eta: int
    schedule: str
    batch_size: int
    lr: float
    max_batches_per_epoch: int | None
    seed: int
    prefilter_keep: int | None = None
    tasks_per_batch: int = 1

    @classmethod
    def of(cls, config: Any) -> RungSetup | None:
        """The rung setup of a `PipelineConfig` (None when ``evaluation.fidelity.kind`` is none).

        The protocol is the finalists' (``training.batch_size``, ``lr``, ``max_batches_per_epoch``)
        under the run's seed, so a top rung and a finalist's training mean the same thing.
        """
        f, t = config.evaluation.fidelity, config.training
        if not f.enabled:
            return None
        return cls(
            data=DataRef.of(config),
            kind=f.kind,
            budgets=f.rungs(t.epochs),
            eta=f.eta,
            schedule=f.schedule,
            batch_size=t.batch_size,
            lr=t.lr,
            max_batches_per_epoch=t.max_batches_per_epoch,
            seed=config.seed,
            prefilter_keep=f.prefilter_keep,
            tasks_per_batch=f.batch_size,
        )

    def spec(self) -> FidelitySpec:
        return FidelitySpec(kind=self.kind, budgets=self.budgets, eta=self.eta, schedule=self.schedule)

    def protocol(self, budget: int) -> RungProtocol:
        """The training protocol of the rung at `budget` (its horizon follows the schedule)."""
        base = RungProtocol(horizon=budget, batch_size=self.batch_size, lr=self.lr, max_batches_per_epoch=self.max_batches_per_epoch, seed=self.seed)
        return self.spec().protocol(base, budget)

    def key(self, arch_id: str, data_fingerprint: str, budget: int) -> tuple[str, str, str, str, int]:
        return rung_key(arch_id, data_fingerprint, self.protocol(budget), budget)

    def describe(self) -> str:
        """The `proxy_version` of the fitness rows: which fidelity produced them."""
        return f"{self.kind}-{self.schedule}-b{'.'.join(map(str, self.budgets))}-eta{self.eta}"


def checkpoint_root(store_path: str | Path) -> Path:
    """The checkpoint folder beside an evaluation store (``evaluations.sqlite.checkpoints``)."""
    path = Path(store_path)
    return path.with_name(path.name + ".checkpoints")


def train_rung(setup: RungSetup, space: dict[str, Any], arch: str, budget: int, checkpoint: bytes | None, device: str) -> dict[str, Any]:
    """Trains one architecture to `budget` epochs; returns its record (as a row) and its checkpoint."""
    built, data = space_from_dict(space), setup.data.load()
    protocol = setup.protocol(budget)
    model = build_seeded(built, arch, data, setup.seed)
    result = train_to_budget(model, data, protocol, budget, device, checkpoint)
    arch_id = built.arch_id(built.from_string(arch))
    _, fingerprint, proxy, version, seed = rung_key(arch_id, str(data.fingerprint), protocol, budget)
    value = None if result.state != "ok" else result.score
    record = EvalRecord(arch_id, arch, proxy, version, fingerprint, seed, value, result.state, result.error, result.seconds, device)
    return {"record": record.to_row(), "checkpoint": result.checkpoint}


@task(
    name="train-rungs",
    retries=1,
    retry_delay_seconds=1,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
    task_run_name="train-rungs-{label}",
)
def train_rungs(
    setup: RungSetup,
    space: dict[str, Any],
    work: Sequence[RungWork],
    device: str,
    label: str = "",
    gated: bool = False,
    torch_threads: int | None = None,
) -> list[dict[str, Any]]:
    """Trains one batch of rungs on one device, resolved where the task runs (`on_worker`); each
    result is a record row and a checkpoint."""
    device, _ = on_worker(device, torch_threads)
    with device_slot(device, gated):
        return [train_rung(setup, space, arch, budget, checkpoint, device) for arch, budget, checkpoint in work]
