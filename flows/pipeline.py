"""The parent flow `nas_pipeline(config)`: knowledge -> macro -> hyperparameters -> connections ->
population -> evaluation -> search -> finalists training -> registration.

Every step writes one Parquet file under ``<runs_root>/<run name>/`` and is recorded in the run's
ledger (``steps.json``) with the config fingerprint. Running the same run again (same name, or
``ehnas resume``) reuses every finished step; an unfinished step reruns, and its scores come
from the shared evaluation store, so only the evaluations that never finished are paid for.

The flow reads and writes the run folder (`RunFolder`) and the evaluation store; its tasks get
values and return rows, so they can run wherever the task runner puts them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.runners import check_runner
from flows.stages import Evaluation, evaluate, search_generations, train
from nas_lib.data.datasets import DatasetError
from nas_lib.evaluation import EVALUATION_SCHEMA, EvalRecord
from nas_lib.pruning import PRUNING_SCHEMA
from nas_lib.report import summary_markdown, write_plots
from nas_lib.steps import LAYER_STEPS, Step
from tasks import ui
from tasks.config import PipelineConfig
from tasks.context import apply_runtime, plan_devices
from tasks.data_ref import DataRef
from tasks.evaluation import evaluation_rows
from tasks.knowledge import KNOWLEDGE_SCHEMA, knowledge_step
from tasks.population import POPULATION_SCHEMA, population_step
from tasks.pruning import prune_layer, skipped_layer_row
from tasks.registry import REGISTRY_SCHEMA, register_winner, registry_row
from tasks.run_folder import RunFolder
from tasks.spaces import base_space_dict, narrowing_note
from tasks.training import winner

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
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_HOME,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        get_current_settings,
        temporary_settings,
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


def run_step(run: RunFolder, step: Step, work: Callable[[], Any]) -> bool:
    """Runs `work` unless `step` already finished for this config; returns True when it ran."""
    log = get_run_logger()
    if run.done(step):
        log.info("%s: finished earlier, reusing %s", step, run.step_file(step))
        return False
    damage = run.damage(step)
    if damage:  # a file changed after it was recorded: redo it and everything built on it
        log.warning("%s: %s; redoing it and every later step (stored scores are reused)", step, damage)
        run.forget(step)
    start = time.perf_counter()
    work()
    run.mark(step, time.perf_counter() - start)
    log.info("%s: done in %.1f s", step, time.perf_counter() - start)
    return True


def _previous_layers(run: RunFolder, layer: str) -> list[dict[str, Any]]:
    """The earlier layers' rows with the space each left (the LLM prompt's context)."""
    out = []
    for name, step in LAYER_STEPS.items():
        if name == layer:
            break
        if run.step_file(step).exists():
            out += [{"layer": name, "space": run.space_dict(upto=name), "record": r} for r in run.read_step(step).to_dict("records")]
    return out


def prune(run: RunFolder, cfg: PipelineConfig, layer: str, prune_task: Callable[..., dict[str, Any]] = prune_layer) -> None:
    """One pruning layer (or its skipped row): the task gets values, the flow stores its scores,
    the narrowed space and the row (`prune_task`: the task, or its ``.fn`` without Prefect)."""
    space = run.space_before(layer)
    if layer not in cfg.pruning.layers:
        row = skipped_layer_row(layer, space)
    else:
        ev = Evaluation.of(run)
        proxies = [(p.name, str(p.version)) for p in ev.scoring.proxy_objects()]
        known = [r.to_row() for r in ev.store.select(ev.scoring.data_fingerprint(), ev.scoring.seed, proxies)]
        knowledge = run.read_step(Step.KNOWLEDGE).to_dict("records")
        if hasattr(prune_task, "with_options"):  # the Prefect task (tests may pass its plain function)
            prune_task = prune_task.with_options(timeout_seconds=cfg.execution.batch_timeout_s)
        out = prune_task(layer, space, base_space_dict(cfg.space), _previous_layers(run, layer), knowledge, cfg.pruning, ev.scoring, known)
        ev.store.put_many(EvalRecord(**r) for r in out["records"])
        row, space = out["row"], out["space"]
    run.save_space(layer, space)
    run.write_step(LAYER_STEPS[layer], [row], PRUNING_SCHEMA)


def register(run: RunFolder, cfg: PipelineConfig, register_task: Callable[..., dict[str, Any]] = register_winner) -> None:
    """Writes the run's plots and registers the winner in MLflow (which logs them with the run), or records why not."""
    best = winner(run.read_step(Step.TRAINING))
    steps = [str(run.step_file(s)) for s in Step]
    if best is not None:
        write_plots(run.root)
    if cfg.registry.enabled:
        row = register_task(cfg, best, str(run.root), steps, run.space_dict())
    else:
        row = registry_row(cfg, best, run_dir=run.root, steps=steps, space=run.space_dict(), skip=True)
    run.write_step(Step.REGISTRY, [row], REGISTRY_SCHEMA)


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
    with deployment_guard(cfg):
        return _pipeline(cfg, redo)


class DataLoadFailed(DatasetError):
    """The run's dataset failed to load, before the first step (not inside one)."""


def load_run_data(cfg: PipelineConfig) -> Any:
    """The run's `ImageDataset`; a dataset error becomes `DataLoadFailed`, so that the failure
    names the loading rather than the first step the ledger has not marked."""
    try:
        return DataRef.of(cfg).load()
    except DatasetError as err:
        raise DataLoadFailed(str(err)) from err


class PreflightFailed(RuntimeError):
    """A deployment run's config, data or tracking URI failed the preflight of `ehnas run`."""


@contextlib.contextmanager
def deployment_guard(cfg: PipelineConfig) -> Iterator[None]:
    """A flow run started by a Prefect worker (a deployment, e.g. the nightly one) gets what
    `ehnas run` does before Prefect starts: the preflight checks and the run lock, held for the
    whole run. `ehnas run` (and a direct call) has no deployment and passes straight through.

    Raises:
        PreflightFailed: a check failed (its message is the one `ehnas run` would print).
        RunLocked: another process is writing this run folder.
    """
    from prefect.runtime import deployment

    if deployment.id is None:
        yield
        return
    # the command line's own checks and lock (the edge package), so both paths refuse the same runs
    from ehnas.exit_codes import CliError
    from ehnas.preflight import preflight
    from ehnas.runlock import run_lock

    try:
        preflight(cfg)
    except CliError as err:
        raise PreflightFailed(err.message) from None
    with run_lock(cfg.run_dir()):
        yield


def _pipeline(cfg: PipelineConfig, redo: str | None) -> dict[str, Any]:
    """The steps of `nas_pipeline`, in order."""
    apply_runtime(cfg)
    # a device this machine lacks stops the run here, before any step (on a cluster at an address, a bad name)
    plan_devices(cfg.device, cfg.execution)
    check_runner(cfg.execution)  # so does a runner whose extra is not installed
    run = RunFolder.create(cfg)
    if note := narrowing_note(cfg.space):  # `ehnas space describe` counts the full space; say why this run starts smaller
        get_run_logger().info("%s", note)
    if run.ledger_problem():
        get_run_logger().warning("%s", run.ledger_problem())
    data = run.save_data_record(load_run_data(cfg))
    if data["skipped_count"]:
        get_run_logger().warning(
            "data: %d corrupt image files skipped (listed in %s), e.g. %s",
            data["skipped_count"],
            run.data_file,
            "; ".join(f"{s['file']} ({s['reason']})" for s in data["skipped"][:3]),
        )
    if redo:
        run.forget(redo)
    ran: list[str] = []

    def step(name: Step, work: Callable[[], Any]) -> None:
        if run_step(run, name, work):
            ran.append(str(name))

    step(Step.KNOWLEDGE, lambda: run.write_step(Step.KNOWLEDGE, knowledge_step(cfg.knowledge, str(run.knowledge_dir)), KNOWLEDGE_SCHEMA))
    for layer, name in LAYER_STEPS.items():
        step(name, functools.partial(prune, run, cfg, layer))
    step(Step.POPULATION, lambda: run.write_step(Step.POPULATION, population_step(run.space_dict(), cfg.population, cfg.seed), POPULATION_SCHEMA))
    step(
        Step.EVALUATIONS,
        lambda: run.write_step(
            Step.EVALUATIONS, evaluation_rows(evaluate(run, run.read_step(Step.POPULATION)["arch"].tolist(), "population")), EVALUATION_SCHEMA
        ),
    )
    step(Step.SEARCH, lambda: search_generations(run))
    step(Step.TRAINING, lambda: train(run))
    step(Step.REGISTRY, lambda: register(run, cfg))
    run.clear_interrupted()  # finished: an earlier signal's record is history
    summary = summary_markdown(run.root)
    ui.markdown(f"{cfg.resolved_run_name()}-summary", summary, f"EHNAS run {cfg.resolved_run_name()}")
    print(summary)
    return {"run_dir": str(run.root), "ran": ran, "steps": [str(s) for s in Step]}
