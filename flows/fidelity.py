"""Multi-fidelity scoring in the flow: proxies first, then successive-halving (or Hyperband)
rungs of short trainings, each rung's batch a `train_rungs` task in the flow's task runner.

The flow alone reads and writes the evaluation store and the checkpoint folder. Each round it
looks up every (architecture, budget) of the plan in the store (a rung scored before, in this run
or another, is never trained again), finds for each missing one the checkpoint of its highest
lower rung (long schedule), submits the rest in batches and stores each batch's scores and
checkpoints as soon as it is back. A run killed in the middle of a rung therefore resumes with the
finished trainings of that rung read from the store and only the others trained, each continuing
from its own checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from prefect.futures import as_completed

from flows.runners import release
from flows.stages import Evaluation, gate_gpus, score_in_batches
from nas_lib.evaluation import EvalRecord, fitness_of, split_batches
from nas_lib.fidelity.checkpoints import CheckpointStore
from nas_lib.fidelity.plan import FITNESS, FidelityPlan
from tasks import ui
from tasks.evaluation import make_proxy
from tasks.fidelity import RungSetup, RungWork, checkpoint_root, train_rungs
from tasks.spaces import space_from_dict

Rung = tuple[str, int]  # architecture, budget


def score_in_rungs(ev: Evaluation, archs: Sequence[str], label: str) -> list[dict[str, Any]]:
    """The proxy rows of `archs`, then every rung row and one `FITNESS` row per architecture
    (its validation accuracy at the highest rung it reached), in input order."""
    setup = ev.rungs
    assert setup is not None, "score_in_rungs needs evaluation.fidelity enabled"
    proxy_rows = score_in_batches(ev, archs, label)
    kept = prefilter(proxy_rows, archs, ev.scoring.proxies[0], setup.prefilter_keep)
    plan, records = FidelityPlan(kept, setup.spec()), {}
    rounds = 0
    while work := plan.ask():
        got = train_round(ev, setup, work, f"{label}-round-{rounds}")
        records.update(got)
        plan.tell({rung: (math.nan if r.state != "ok" or r.value is None else r.value) for rung, r in got.items()})
        rounds += 1
    fitness = fitness_rows(ev, setup, archs, plan, records)
    return proxy_rows + [r.to_row() for r in records.values()] + fitness


def prefilter(proxy_rows: Sequence[dict[str, Any]], archs: Sequence[str], proxy: str, keep: int | None) -> list[str]:
    """The `keep` best of `archs` by `proxy` (all of them when `keep` is None); failures never kept."""
    unique = list(dict.fromkeys(archs))
    if keep is None or keep >= len(unique):
        return unique
    p = make_proxy(proxy)
    by_id = fitness_of([EvalRecord(**r) for r in proxy_rows], p.name, p.higher_is_better)
    arch_ids = {r["arch"]: r["arch_id"] for r in proxy_rows}
    scored = [a for a in unique if not math.isnan(by_id.get(arch_ids[a], math.nan))]
    return sorted(scored, key=lambda a: -by_id[arch_ids[a]])[:keep]


def train_round(ev: Evaluation, setup: RungSetup, work: Sequence[Rung], label: str) -> dict[Rung, EvalRecord]:
    """The records of one round's rungs: read from the store, else trained (and then stored).

    Raises:
        The first batch's error, after every other batch has finished and been stored.
    """
    space = space_from_dict(ev.space)
    fingerprint = ev.scoring.data_fingerprint()
    ids = {arch: space.arch_id(space.from_string(arch)) for arch, _ in work}
    keys = {rung: setup.key(ids[rung[0]], fingerprint, rung[1]) for rung in work}
    known = ev.store.get_many(keys.values())
    out = {rung: known[keys[rung]] for rung in work if keys[rung] in known}
    checkpoints = CheckpointStore(checkpoint_root(ev.store.path))
    missing: list[RungWork] = [
        (arch, budget, start_from(setup, checkpoints, ids[arch], fingerprint, budget)) for arch, budget in work if (arch, budget) not in out
    ]
    gated = gate_gpus(ev.devices, bool(missing))
    batches = split_batches(missing, setup.tasks_per_batch)
    progress = ui.progress_start(f"{ev.name}-{label}-progress", f"{label}: {len(missing)} rungs trained, {len(out)} read from the store")
    trainer = train_rungs.with_options(timeout_seconds=ev.training_timeout_s)
    futures = [
        trainer.submit(setup, ev.space, b, ev.devices[i % len(ev.devices)], label=f"{label}-{i}", gated=gated, torch_threads=ev.torch_threads)
        for i, b in enumerate(batches)
    ]
    if not futures:  # every rung came from the store: the step is complete, not at 0%
        ui.progress_show(progress, 1, 1, f"all {len(out)} rungs read from the store, none trained")
    errors: list[BaseException] = []
    for done, future in enumerate(as_completed(futures), 1):
        try:
            results = future.result()
        except Exception as err:  # noqa: BLE001 - the other batches are still stored; raised below
            errors.append(err)
            continue
        for result in results:
            record = EvalRecord(**result["record"])
            keep_checkpoint(setup, checkpoints, record, result["checkpoint"])
            out[record.arch, int(record.proxy.rsplit("@", 1)[1])] = record
        ev.store.put_many(EvalRecord(**r["record"]) for r in results)  # after its checkpoint: a stored score always has one
        release(future)
        ui.progress_update(progress, done, len(futures))
    if errors:
        raise errors[0]
    return {rung: out[rung] for rung in work}


def start_from(setup: RungSetup, checkpoints: CheckpointStore, arch_id: str, fingerprint: str, budget: int) -> bytes | None:
    """The checkpoint of the highest lower rung of the long schedule that has one (None: train from epoch 1)."""
    if setup.schedule != "long":
        return None
    for lower in sorted((b for b in setup.budgets if b < budget), reverse=True):
        saved = checkpoints.get(setup.key(arch_id, fingerprint, lower))
        if saved is not None:
            return saved
    return None


def keep_checkpoint(setup: RungSetup, checkpoints: CheckpointStore, record: EvalRecord, checkpoint: bytes | None) -> None:
    """Saves a rung's checkpoint when a later rung may continue it (long schedule, below the top budget)."""
    budget = int(record.proxy.rsplit("@", 1)[1])
    if checkpoint is not None and setup.schedule == "long" and budget < setup.budgets[-1]:
        checkpoints.put(setup.key(record.arch_id, record.data_fingerprint, budget), checkpoint)


def fitness_rows(ev: Evaluation, setup: RungSetup, archs: Sequence[str], plan: FidelityPlan, records: dict[Rung, EvalRecord]) -> list[dict[str, Any]]:
    """One `FITNESS` row per unique architecture: its score at the highest rung it reached (its
    seconds are 0: the rung rows carry the training time, and the search adds an architecture's rows)."""
    space, highest = space_from_dict(ev.space), plan.highest()
    fingerprint, rows = ev.scoring.data_fingerprint(), []
    for arch in dict.fromkeys(archs):
        arch_id = space.arch_id(space.from_string(arch))
        mine = [r for (a, _), r in records.items() if a == arch]
        if arch in highest:
            budget, _ = highest[arch]
            top = records[arch, budget]
            value, state, error = top.value, top.state, top.error
        else:
            value, state, error = None, "failed", f"prefiltered: not among the best {setup.prefilter_keep} by {ev.scoring.proxies[0]}"
        cached = bool(mine) and all(r.cached for r in mine)
        device = mine[-1].device if mine else ""
        rows.append(EvalRecord(arch_id, arch, FITNESS, setup.describe(), fingerprint, setup.seed, value, state, error, 0.0, device, cached).to_row())
    return rows
