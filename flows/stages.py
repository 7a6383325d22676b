"""Sub-flows of the pipeline: each group that needs its own task runner (parallel batches,
one worker per device) runs as a sub-flow, so it shows as one expandable node in the UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner

from flows.runners import task_runner
from nas_lib.evaluation import split_batches
from tasks import ui
from tasks.context import load_config, plan_devices
from tasks.evaluation import gpu_limit_name, score_batch
from tasks.search import finish_search, propose_generation, record_generation, start_search
from tasks.training import select_finalists, train_finalist, write_training


def ensure_gpu_limits(devices: list[str]) -> None:
    """One global concurrency limit of 1 slot per GPU: two batches never share a device."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        existing = {limit.name for limit in client.read_global_concurrency_limits(limit=200)}
        for device in devices:
            if gpu_limit_name(device) not in existing:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=gpu_limit_name(device), limit=1))


def _runner(run_dir: str) -> TaskRunner:
    """The configured task runner (flows/runners.py): one worker per device unless set."""
    cfg = load_config(run_dir)
    return task_runner(cfg.execution, plan_devices(cfg.device))


def _child_name(prefix: str) -> str:
    """Sub-flow run names the UI can read: ``search-<run name>``."""
    from prefect.runtime import flow_run

    return f"{prefix}-{Path(str(flow_run.parameters.get('run_dir', ''))).name}"


@flow(name="evaluate", flow_run_name="evaluate-{label}")
def evaluate_architectures(run_dir: str, archs: list[str], label: str) -> list[dict[str, Any]]:
    """Scores architectures in batches spread over the devices; rows in input order."""
    return score_in_batches(run_dir, archs, label)


def evaluate(run_dir: str, archs: list[str], label: str) -> list[dict[str, Any]]:
    """`evaluate_architectures` with one worker per device."""
    return evaluate_architectures.with_options(task_runner=_runner(run_dir))(run_dir, archs, label)


def score_in_batches(run_dir: str, archs: list[str], label: str) -> list[dict[str, Any]]:
    """`score_batch` tasks in the calling flow's task runner, one progress artifact; rows in
    input order."""
    cfg = load_config(run_dir)
    devices = plan_devices(cfg.device)
    gated = len(devices) > 1 and devices[0].startswith("cuda")
    if gated:
        ensure_gpu_limits(devices)
    batches = split_batches(archs, cfg.evaluation.batch_size)
    progress = ui.progress_start(f"{cfg.resolved_run_name()}-{label}-progress", f"{label}: batches of {cfg.evaluation.batch_size} scored")
    futures = [score_batch.submit(run_dir, b, devices[i % len(devices)], label=f"{label}-{i}", gated=gated) for i, b in enumerate(batches)]
    order = {f.task_run_id: i for i, f in enumerate(futures)}
    results: dict[int, list[dict[str, Any]]] = {}
    for done, future in enumerate(as_completed(futures), 1):
        results[order[future.task_run_id]] = future.result()
        ui.progress_update(progress, done, len(futures))
    return [row for i in sorted(results) for row in results[i]]


@flow(name="search", flow_run_name=lambda: _child_name("search"))
def search_flow(run_dir: str) -> str:
    """Generations of ask -> score -> tell; the state is saved after every step.

    A generation's batches are tasks of this flow, not an `evaluate` sub-flow: every flow run
    ends by joining Prefect's heartbeat thread, which sleeps in 1 s steps, so a sub-flow per
    generation cost ~1.2 s of wall time each (measured with an empty sub-flow).
    """
    cfg, log = load_config(run_dir), get_run_logger()
    first = start_search(run_dir)["generation"]
    for generation in range(first, cfg.search.generations + 1):
        archs = propose_generation(run_dir, generation)
        rows = score_in_batches(run_dir, archs, f"generation-{generation}")
        top = record_generation(run_dir, generation, rows)
        ui.table(f"{cfg.resolved_run_name()}-top-k", top, f"top {len(top)} after generation {generation}")
        log.info("generation %d: best fitness %.4f (%s)", generation, top[0]["fitness"] if top else float("nan"), top[0]["arch_id"] if top else "-")
    return str(finish_search(run_dir))


@flow(name="train-finalists", flow_run_name=lambda: _child_name("train-finalists"))
def train_finalists(run_dir: str) -> str:
    """Trains the top-k finalists (one worker per device) and writes ``08_training.parquet``."""
    devices = plan_devices(load_config(run_dir).device)
    finalists = select_finalists(run_dir)
    futures = [train_finalist.submit(run_dir, f, devices[i % len(devices)]) for i, f in enumerate(finalists)]
    return str(write_training(run_dir, [f.result() for f in futures]))


def search_generations(run_dir: str) -> str:
    """`search_flow` with one worker per device."""
    return search_flow.with_options(task_runner=_runner(run_dir))(run_dir)


def train(run_dir: str) -> str:
    return train_finalists.with_options(task_runner=_runner(run_dir))(run_dir)
