"""The parent flow `nas_pipeline(config)`: knowledge -> macro -> hyperparameters -> connections ->
population -> evaluation -> search -> finalists training -> registration.

Every step writes one Parquet file under ``<runs_root>/<run name>/`` and is recorded in the run's
ledger (``steps.json``) with the config fingerprint. Running the same run again (same name, or
``ehnas resume``) reuses every finished step; an unfinished step reruns, and its scores come
from the shared evaluation store, so only the evaluations that never finished are paid for.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from tasks.config import PipelineConfig
from flows.runners import check_runner
from flows.stages import evaluate, search_generations, train
from nas_lib.report import summary_markdown
from tasks import ui
from tasks.context import LAYER_STEPS, STEPS, apply_runtime, forget_from, mark_done, plan_devices, step_done, step_path, write_config
from tasks.evaluation import write_evaluations
from tasks.knowledge import knowledge_step
from tasks.population import population_archs, population_step
from tasks.pruning import prune_layer, skip_layer
from tasks.registry import register_winner

# `ehnas run` must work on a fresh machine without a Prefect server or telemetry.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def set_prefect_defaults(home: str | Path | None = None) -> None:
    """Sets the environment defaults the pipeline needs (never overrides what is set).

    Prefect reads its settings when it is imported, so this must run before the first import of
    prefect; `prefect_settings` applies the same defaults to an already imported Prefect.
    """
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if home is not None:
        os.environ.setdefault("PREFECT_HOME", str(Path(home).resolve()))


@contextlib.contextmanager
def prefect_settings(home: str | Path | None = None) -> Iterator[None]:
    """Applies the pipeline's Prefect defaults (those not set in the environment) for a block.

    Without a configured API URL the server is a temporary one that lives and dies with this
    process, so flow-run heartbeats (crash detection by a lasting server) serve no one; they
    are switched off there, because every flow run ends by joining the heartbeat thread, which
    sleeps in 1 s steps (an empty sub-flow: 1.16 s with heartbeats, 0.20 s without).
    """
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_HOME, PREFECT_SERVER_ANALYTICS_ENABLED, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        get_current_settings, temporary_settings,
    )

    updates: dict[Any, Any] = {}
    heartbeat_set = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"} & set(os.environ)
    if get_current_settings().api.url is None and not heartbeat_set:
        updates[PREFECT_FLOWS_HEARTBEAT_FREQUENCY] = None
    if "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" not in os.environ:
        updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = 90
    if "PREFECT_SERVER_ANALYTICS_ENABLED" not in os.environ:
        updates[PREFECT_SERVER_ANALYTICS_ENABLED] = False
    if home is not None and "PREFECT_HOME" not in os.environ:
        updates[PREFECT_HOME] = str(Path(home).resolve())
    set_prefect_defaults()
    with temporary_settings(updates=updates):
        yield


def _run_name() -> str:
    from prefect.runtime import flow_run

    config = flow_run.parameters.get("config")
    if isinstance(config, PipelineConfig):
        return config.resolved_run_name()
    return PipelineConfig.model_validate(config or {}).resolved_run_name()


def run_step(run_dir: str, step: str, work: Callable[[], Any]) -> bool:
    """Runs `work` unless `step` already finished for this config; returns True when it ran."""
    log = get_run_logger()
    if step_done(run_dir, step):
        log.info("%s: finished earlier, reusing %s", step, step_path(run_dir, step))
        return False
    start = time.perf_counter()
    work()
    mark_done(run_dir, step, time.perf_counter() - start)
    log.info("%s: done in %.1f s", step, time.perf_counter() - start)
    return True


@flow(name="ehnas-pipeline", flow_run_name=_run_name, log_prints=True)
def nas_pipeline(config: PipelineConfig | None = None, redo: str | None = None) -> dict[str, Any]:
    """Runs (or resumes) the whole architecture search and registers the winner.

    Args:
        config: every setting (see `PipelineConfig`); None runs the embedded default.
        redo: a step name (e.g. ``06_evaluations``) to rerun together with every later step.

    Returns:
        The run folder, the steps that ran this time and the summary fields of the run.
    """
    cfg = config or PipelineConfig()
    apply_runtime(cfg)
    plan_devices(cfg.device)  # a device this machine lacks stops the run here, before any step
    check_runner(cfg.execution)  # so does a runner whose extra is not installed
    run_dir = str(write_config(cfg))
    if redo:
        forget_from(run_dir, redo)
    ran: list[str] = []

    def step(name: str, work: Callable[[], Any]) -> None:
        if run_step(run_dir, name, work):
            ran.append(name)

    step("01_knowledge", lambda: knowledge_step(run_dir))
    for layer, name in LAYER_STEPS.items():
        step(name, lambda layer=layer: prune_layer(run_dir, layer) if layer in cfg.pruning.layers else skip_layer(run_dir, layer))
    step("05_population", lambda: population_step(run_dir))
    step("06_evaluations", lambda: write_evaluations(run_dir, evaluate(run_dir, population_archs(run_dir), "population")))
    step("07_search", lambda: search_generations(run_dir))
    step("08_training", lambda: train(run_dir))
    step("09_registry", lambda: register_winner(run_dir) if cfg.registry.enabled else register_winner.fn(run_dir, skip=True))
    summary = summary_markdown(run_dir)
    ui.markdown(f"{cfg.resolved_run_name()}-summary", summary, f"EHNAS run {cfg.resolved_run_name()}")
    print(summary)
    return {"run_dir": run_dir, "ran": ran, "steps": list(STEPS)}
