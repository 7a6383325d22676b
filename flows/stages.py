"""Sub-flows of the pipeline: each group that needs its own task runner (parallel batches,
one worker per device) runs as a sub-flow, so it shows as one expandable node in the UI.

The flow is the only reader and writer of the run folder and the evaluation store: tasks get
values (`Scoring`, the space as a dict, work items, config sections) and return rows, and the
flow stores each result as soon as its future completes, so a run killed mid-way loses at most
the batches (or finalists) still in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner

from flows.runners import release, task_runner
from nas_lib.evaluation import EvalRecord, EvaluationStore, assemble, split_batches, split_cached
from nas_lib.report import finalist_front_rows
from nas_lib.steps import Step
from tasks import ui
from tasks.config import PipelineConfig
from tasks.context import plan_devices
from tasks.data_ref import DataRef
from tasks.evaluation import Scoring, gpu_limit_name, score_batch
from tasks.fidelity import RungSetup
from tasks.run_folder import RunFolder
from tasks.search import SEARCH_SCHEMA, SearchSetup, initial_state, propose_generation, record_generation, search_front, top_k
from tasks.spaces import space_from_dict
from tasks.training import TRAINING_SCHEMA, select_finalists, train_finalist, training_frame


def ensure_gpu_limits(devices: list[str]) -> None:
    """One global concurrency limit of 1 slot per GPU: two batches never share a device."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        existing = {limit.name for limit in client.read_global_concurrency_limits(limit=200)}
        for device in devices:
            if gpu_limit_name(device) not in existing:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=gpu_limit_name(device), limit=1))


def gate_gpus(devices: list[str], has_work: bool) -> bool:
    """Whether batches spread over several GPUs are gated one per device (then the limits exist)."""
    gated = len(devices) > 1 and devices[0].startswith("cuda")
    if gated and has_work:
        ensure_gpu_limits(devices)
    return gated


def _runner(config: PipelineConfig) -> TaskRunner[Any]:
    """The configured task runner (flows/runners.py): one worker per device unless set."""
    return task_runner(config.execution, plan_devices(config.device, config.execution))


def _child_name(prefix: str) -> str:
    """Sub-flow run names the UI can read: ``search-<run name>``."""
    from prefect.runtime import flow_run

    return f"{prefix}-{Path(str(flow_run.parameters.get('run_dir', ''))).name}"


@dataclass(frozen=True)
class Evaluation:
    """What the flow needs to score architectures of a run: the store it alone writes, the values
    every scoring task gets, and how the work is split."""

    store: EvaluationStore
    scoring: Scoring
    space: dict[str, Any]
    batch_size: int
    devices: list[str]
    name: str
    timeout_s: float | None = None  # per score-batch task (execution.batch_timeout_s)
    rungs: RungSetup | None = None  # training rungs after the proxies (evaluation.fidelity); None = proxies only
    training_timeout_s: float | None = None  # per train-rungs task (execution.training_timeout_s)
    torch_threads: int | None = None  # of a score batch's child process (torch_threads)

    @classmethod
    def of(cls, run: RunFolder) -> Evaluation:
        cfg = run.config()
        return cls(
            EvaluationStore(cfg.store_path()),
            Scoring.of(cfg),
            run.space_dict(),
            cfg.evaluation.batch_size,
            plan_devices(cfg.device, cfg.execution),
            cfg.resolved_run_name(),
            cfg.execution.batch_timeout_s,
            RungSetup.of(cfg),
            cfg.execution.training_timeout_s,
            cfg.torch_threads,
        )


def score_in_batches(ev: Evaluation, archs: Sequence[str], label: str) -> list[dict[str, Any]]:
    """Scores architectures: stored scores are reused, the missing (arch, proxy) work goes to
    `score_batch` tasks in the calling flow's task runner, and each batch's records are stored
    as soon as it is back. Returns one row per (unique arch, proxy), in input order.

    Raises:
        The first batch's error, after every other batch has finished and been stored.
    """
    space, proxies = space_from_dict(ev.space), ev.scoring.proxy_objects()
    fingerprint = ev.scoring.data_fingerprint()
    known, work = split_cached(ev.store, space, archs, proxies, data_fingerprint=fingerprint, seed=ev.scoring.seed)
    gated = gate_gpus(ev.devices, bool(work))
    batches = split_batches(work, ev.batch_size)
    progress = ui.progress_start(f"{ev.name}-{label}-progress", f"{label}: batches of {ev.batch_size} scored")
    futures = [
        score_batch.submit(
            ev.scoring,
            ev.space,
            b,
            ev.devices[i % len(ev.devices)],
            label=f"{label}-{i}",
            gated=gated,
            timeout_s=ev.timeout_s,
            torch_threads=ev.torch_threads,
        )
        for i, b in enumerate(batches)
    ]
    if not futures:  # every score came from the store: the step is complete, not at 0%
        ui.progress_show(progress, 1, 1, f"all {len(known)} scores read from the store, none computed")
    fresh: list[EvalRecord] = []
    errors: list[BaseException] = []
    for done, future in enumerate(as_completed(futures), 1):
        try:
            records = [EvalRecord(**row) for row in future.result()]
        except Exception as err:  # noqa: BLE001 - the other batches are still stored; raised below
            errors.append(err)
            continue
        ev.store.put_many(records)
        release(future)  # stored: a cluster must not recompute it if its worker dies later
        fresh += records
        ui.progress_update(progress, done, len(futures))
    if errors:
        raise errors[0]
    return [r.to_row() for r in assemble(space, archs, proxies, [*known.values(), *fresh])]


def score_architectures(ev: Evaluation, archs: Sequence[str], label: str) -> list[dict[str, Any]]:
    """`score_in_batches`, followed by the training rungs when ``evaluation.fidelity`` is on
    (`flows.fidelity.score_in_rungs`): what the population and every search generation get."""
    if ev.rungs is None:
        return score_in_batches(ev, archs, label)
    from flows.fidelity import score_in_rungs  # imports this module

    return score_in_rungs(ev, archs, label)


@flow(name="evaluate", flow_run_name="evaluate-{label}")
def evaluate_architectures(run_dir: str, archs: list[str], label: str) -> list[dict[str, Any]]:
    """Scores architectures in batches spread over the devices; rows in input order."""
    return score_architectures(Evaluation.of(RunFolder(Path(run_dir))), archs, label)


def evaluate(run: RunFolder, archs: list[str], label: str) -> list[dict[str, Any]]:
    """`evaluate_architectures` with one worker per device."""
    return evaluate_architectures.with_options(task_runner=_runner(run.config()))(str(run.root), archs, label)


def _saved(run: RunFolder, state: dict[str, Any]) -> dict[str, Any]:
    """Saves the search state and returns it as saved (JSON), as a resumed run would read it."""
    run.save_search_state(state)
    return run.search_state() or state


@flow(name="search", flow_run_name=lambda: _child_name("search"))
def search_flow(run_dir: str) -> str:
    """Generations of ask -> score -> tell; the state is saved after every step.

    A generation's batches are tasks of this flow, not an `evaluate` sub-flow: every flow run
    ends by joining Prefect's heartbeat thread, which sleeps in 1 s steps, so a sub-flow per
    generation cost ~1.2 s of wall time each (measured with an empty sub-flow).
    """
    run = RunFolder(Path(run_dir))
    cfg, ev = run.config(), Evaluation.of(run)
    setup = SearchSetup.of(cfg, ev.space)
    state = run.search_state() or _saved(run, initial_state(setup, run.read_step(Step.EVALUATIONS).to_dict("records")))
    progress = ui.progress_start(f"{cfg.resolved_run_name()}-search-progress", "search: generations")
    for generation in range(state["generation"], cfg.search.generations + 1):
        state = _saved(run, propose_generation(state, generation, setup))
        rows = score_architectures(ev, state["pending"], f"generation-{generation}")
        state = _saved(run, record_generation(state, generation, rows, setup))
        run.write_step(Step.SEARCH, state["rows"], SEARCH_SCHEMA)
        top = top_k(state["rows"], cfg.search.top_k_table)
        ui.table(f"{cfg.resolved_run_name()}-top-k", top, f"top {len(top)} after generation {generation}")
        best = f"best fitness {top[0]['fitness']:.4f} ({top[0]['arch_id']})" if top else "no architecture scored"
        ui.progress_update(progress, generation, cfg.search.generations, best)
    save_front(run, Step.SEARCH, search_front(setup, state), "search Pareto front (NSGA-II)")
    return str(run.write_step(Step.SEARCH, state["rows"], SEARCH_SCHEMA))


def save_front(run: RunFolder, step: Step, front: list[dict[str, Any]], title: str) -> None:
    """Saves a step's Pareto front (``<step>_pareto.parquet``) and shows it as a table artifact; nothing when empty."""
    if not front:
        return
    run.write_pareto(step, front)
    score, cost = front[0]["score_name"], front[0]["cost_name"]
    rows = [{f"{score} (up)": r["score"], f"{cost} (down)": r["cost"], "arch_id": r["arch_id"], "arch": r["arch"]} for r in front]
    ui.table(f"{run.config().resolved_run_name()}-{step}-pareto", rows, f"{title}: {len(rows)} architectures, {score} up, {cost} down")


def save_finalist(run: RunFolder, result: dict[str, Any]) -> dict[str, Any]:
    """Saves a trained finalist's weights, ROC curves (and plot) and row; returns the row."""
    import io

    import torch

    from nas_lib.artifacts import atomic_write_bytes, atomic_write_json
    from nas_lib.evaluation_curves import write_roc_plot

    row, arch_id = dict(result["row"]), result["row"]["arch_id"]
    if result["state_dict"] is not None:
        buffer = io.BytesIO()  # serialised in memory, then written atomically (a kill or a full disk leaves no torn file)
        torch.save(result["state_dict"], buffer)
        atomic_write_bytes(run.weights_file(arch_id), buffer.getvalue())
        row["weights"] = str(run.weights_file(arch_id))
    if result["roc"] is not None:
        atomic_write_json(run.finalists_dir / f"{arch_id}.roc.json", result["roc"])
        write_roc_plot(result["roc"], run.plots_dir / f"roc-{arch_id}.png", title=f"ROC one-vs-rest, {arch_id}")
    run.save_finalist(row)
    return row


@flow(name="train-finalists", flow_run_name=lambda: _child_name("train-finalists"))
def train_finalists(run_dir: str) -> str:
    """Trains the top-k finalists (one worker per device) and writes ``08_training.parquet``;
    finalists trained before a crash are reused from their saved rows."""
    run = RunFolder(Path(run_dir))
    cfg = run.config()
    devices, space, data = plan_devices(cfg.device, cfg.execution), run.space_dict(), DataRef.of(cfg)
    finalists = select_finalists(run.read_step(Step.SEARCH), cfg.training.top_k)
    rows = {f["arch_id"]: run.finalist_row(f["arch_id"]) for f in finalists}
    ex = cfg.execution  # the limit is enforced in a child process (tasks.child), not by Prefect
    futures = [
        train_finalist.submit(
            f,
            space,
            data,
            cfg.training,
            cfg.seed,
            cfg.data.test,
            devices[i % len(devices)],
            ex.progress_every_s,
            ex.training_timeout_s,
            cfg.torch_threads,
        )
        for i, f in enumerate(finalists)
        if rows[f["arch_id"]] is None
    ]
    for future in as_completed(futures):
        row = save_finalist(run, future.result())
        release(future)
        rows[row["arch_id"]] = row
    frame = training_frame([r for r in rows.values() if r is not None])
    save_front(run, Step.TRAINING, finalist_front_rows(frame), "finalists' Pareto front")
    return str(run.write_step(Step.TRAINING, frame, TRAINING_SCHEMA))


def search_generations(run: RunFolder) -> str:
    """`search_flow` with one worker per device."""
    return search_flow.with_options(task_runner=_runner(run.config()))(str(run.root))


def train(run: RunFolder) -> str:
    return train_finalists.with_options(task_runner=_runner(run.config()))(str(run.root))
