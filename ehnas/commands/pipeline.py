"""`ehnas run`, `ehnas resume <run>`, `ehnas report <run>`: the pipeline from the command line.

The config, the names in it, the data and the MLflow URI are checked before Prefect starts
(`ehnas.preflight`); every expected failure exits with its `ExitCode` and one boxed message.
"""

from __future__ import annotations

import os
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ehnas.exit_codes import CliError, ExitCode
from nas_lib.steps import Step
from tasks.config import ConfigError, describe_fields

RUN_HELP = (
    "Run the architecture search pipeline (Prefect flow; local ephemeral Prefect and MLflow when no "
    "server is configured). With no options: embedded knowledge, offline pruning, scikit-learn digits.\n\n"
    "Config fields (YAML keys / --set dotted.key=value), with defaults:\n\n"
    + "\n\n".join(describe_fields())
    + "\n\nExit codes: "
    + ", ".join(f"{int(c)} {c.name.lower()}" for c in ExitCode)
    + " (docs/pipeline.md)."
)
REDO_HELP = "Rerun this step and every later one."
# The step names as a choice: a typo is a usage error listing them (it used to be free text).
RedoStep = Enum("RedoStep", {str(step): str(step) for step in Step}, type=str)  # type: ignore[misc]


def _execute(config: Any, redo: RedoStep | None, wait: bool = False, resuming: bool = False) -> None:
    from ehnas.console_log import tracebacks_to_file
    from ehnas.interrupt import Interrupted, signals_stop_the_run
    from ehnas.prefect_server import local_prefect
    from ehnas.preflight import preflight
    from ehnas.runlock import OTHER_NAME_HINT, cli_run_lock
    from tasks.context import plan_devices

    try:
        plan_devices(config.device, config.execution)  # said before Prefect starts (the flow checks again where it runs)
    except ValueError as err:
        raise CliError(f"device: {err}", ExitCode.USAGE) from None
    preflight(config)
    from flows.pipeline import nas_pipeline, prefect_settings  # imported after the checks: it creates Prefect's home

    start = time.perf_counter()
    # one writer per run name (before Prefect starts); a Prefect server that dies with this process,
    # entered before the flow and so left last: a signal stops the work, then the ledger, then it
    with cli_run_lock(config.run_dir(), wait, other_name="" if resuming else OTHER_NAME_HINT), signals_stop_the_run() as run_flow:
        try:
            with (
                prefect_settings(home=".prefect" if "PREFECT_API_URL" not in os.environ else None),
                local_prefect(),
                tracebacks_to_file(config.run_dir()),
            ):
                try:
                    result = run_flow(lambda: nas_pipeline(config=config, redo=redo.value if redo else None))
                except Interrupted as stop:
                    record_interruption(config, stop)
                    raise
        except Interrupted as stop:
            raise interrupted_error(config, stop) from None
        except Exception as err:  # noqa: BLE001 - every failure inside the run becomes its exit code
            raise run_failure(config, err) from err
    run_dir = Path(result["run_dir"])
    typer.echo(f"\nrun folder: {run_dir.resolve()}  ({time.perf_counter() - start:.1f} s; steps run now: {', '.join(result['ran']) or 'none'})")
    check_registration(run_dir, config.registry.enabled)


def record_interruption(config: Any, stop: Any) -> None:
    """Writes the step a signal stopped into the run's ledger (when the run folder exists)."""
    from tasks.run_folder import RunFolder

    run = RunFolder(config.run_dir())
    if run.config_file.exists():
        run.mark_interrupted(failed_step(run.root), stop.name)


def interrupted_error(config: Any, stop: Any) -> CliError:
    """The `CliError` of a run stopped by SIGINT (130) or SIGTERM (143)."""
    step = failed_step(config.run_dir())
    return CliError(
        f"run interrupted by {stop.name} in step {step or '(before the first step)'}; "
        f"`ehnas resume {config.resolved_run_name()}` continues from there",
        stop.exit_code,
    )


def run_failure(config: Any, err: Exception) -> CliError:
    """The `CliError` for an exception out of the flow: data (3), registration (4) or a step (5)."""
    from ehnas.console_log import LOG_NAME
    from flows.pipeline import DataLoadFailed
    from nas_lib.data.datasets import DatasetError
    from nas_lib.steps import Step

    step = failed_step(config.run_dir())
    text = f"{type(err).__name__}: {err}"
    log = config.run_dir() / LOG_NAME
    resume = f"; after fixing it, `ehnas resume {config.resolved_run_name()}` continues from there"
    if log.exists():
        resume += f" (traceback in {log})"
    if isinstance(err, DatasetError):
        where = "while loading the data, before the first step" if isinstance(err, DataLoadFailed) else f"in step {step}"
        return CliError(f"data ({config.data.kind}, {config.data.path}), {where}: {err}", ExitCode.DATA)
    if step == Step.REGISTRY:
        return CliError(f"registration failed: {text}{resume}", ExitCode.REGISTRY)
    return CliError(f"run failed in step {step or '(before the first step)'}: {text}{resume}", ExitCode.RUN_FAILED)


def failed_step(run_dir: Path) -> str | None:
    """The first step the run folder's ledger does not mark finished (None without a ledger)."""
    from nas_lib.steps import Step
    from tasks.run_folder import RunFolder

    run = RunFolder(run_dir)
    if not run.config_file.exists():
        return None
    try:
        return next((str(s) for s in Step if not run.done(s)), None)
    except (OSError, ValueError):  # a damaged config cannot name the step
        return None


def check_registration(run_dir: Path, enabled: bool) -> None:
    """Prints the registered model; a registration that did not happen exits non-zero."""
    from nas_lib.artifacts import read_table
    from nas_lib.steps import Step
    from tasks.run_folder import RunFolder

    registry = RunFolder(run_dir).step_file(Step.REGISTRY)
    if not registry.exists():
        raise CliError(f"no registration record at {registry}", ExitCode.RUN_FAILED)
    row = read_table(registry).iloc[0].to_dict()
    if row["state"] == "ok":
        typer.echo(f"registered model: {row['model_name']} v{row['version']} @{row['alias']} at {row['tracking_uri']}")
    elif row["state"] == "skipped" and not enabled:
        typer.echo(f"registered model: none ({row['note']})")
    elif not isinstance(row.get("arch_id"), str) or not row["arch_id"]:  # null reads back as None or NaN
        raise CliError(f"nothing to register: {row['note']}", ExitCode.RUN_FAILED)
    else:
        raise CliError(f"registration {row['state']}: {row['note']}", ExitCode.REGISTRY)


def load_run_config(config: Path | None, overrides: list[str]) -> Any:
    """The config of `ehnas run`; a bad file, key or value is a usage error naming the field."""
    from tasks.config import load_config

    try:
        return load_config(config, overrides)
    except ConfigError as err:
        raise CliError(f"config: {err}", ExitCode.USAGE) from None


def run_folder(run: str, runs_root: Path) -> Path:
    """A run given by name (under `runs_root`) or path; a clear error when it is not a run folder."""
    folder = Path(run) if Path(run).is_dir() else runs_root / run
    if not (folder / "config.json").exists():
        raise typer.BadParameter(f"{folder} is not a run folder (no config.json)", param_hint="RUN")
    return folder


def _damaged_files(folder: Path) -> list[str]:
    """Why each recorded step file (or the ledger) of a run no longer matches what was written."""
    from nas_lib.steps import Step
    from tasks.run_folder import RunFolder

    run = RunFolder.open(folder)
    problems = [run.ledger_problem()] + [run.damage(step) for step in Step]
    return [p for p in problems if p]


def register(app: typer.Typer) -> None:
    """Adds `run`, `resume` and `report` to the root app."""

    @app.command("run", help=RUN_HELP)
    def run(
        config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of config fields.")] = None,
        set_: Annotated[list[str], typer.Option("--set", "-s", help="Override a field: dotted.key=value (repeatable).")] = [],  # noqa: B006
        run_name: Annotated[str | None, typer.Option("--run-name", help="Shortcut for --set run_name=NAME.")] = None,
        redo: Annotated[RedoStep | None, typer.Option("--redo", help=REDO_HELP)] = None,
        wait: Annotated[bool, typer.Option("--wait", help="If this run is already running, wait for it instead of failing.")] = False,
    ) -> None:
        overrides = list(set_) + ([f"run_name={run_name}"] if run_name else [])
        cfg = load_run_config(config, overrides)
        _execute(cfg, redo, wait)

    @app.command("resume", help="Resume a run from its folder: finished steps and stored evaluations are reused.")
    def resume(
        run: Annotated[str, typer.Argument(help="Run name (under --runs-root) or a run folder path.")],
        runs_root: Annotated[Path, typer.Option("--runs-root", help="Folder holding run folders.")] = Path("runs"),
        redo: Annotated[RedoStep | None, typer.Option("--redo", help=REDO_HELP)] = None,
        wait: Annotated[bool, typer.Option("--wait", help="If this run is already running, wait for it instead of failing.")] = False,
    ) -> None:
        from tasks.run_folder import RunFolder

        folder = run_folder(run, runs_root)
        cfg = RunFolder(folder).config().model_copy(update={"runs_root": str(folder.parent), "run_name": folder.name})
        _execute(cfg, redo, wait, resuming=True)

    @app.command("report", help="Print a run's summary from its Parquet files and write search-progress and Pareto plots.")
    def report(
        run: Annotated[str, typer.Argument(help="Run name (under --runs-root) or a run folder path.")],
        runs_root: Annotated[Path, typer.Option("--runs-root", help="Folder holding run folders.")] = Path("runs"),
        out: Annotated[Path | None, typer.Option("--out", help="Folder for the PNG plots (default <run>/plots).")] = None,
    ) -> None:
        from nas_lib.artifacts import DamagedFileError
        from nas_lib.report import summary_markdown, write_plots

        folder = run_folder(run, runs_root)
        damaged = _damaged_files(folder)
        typer.echo(summary_markdown(folder))
        try:
            for path in write_plots(folder, out):
                typer.echo(f"plot: {path}")
        except DamagedFileError as err:
            damaged.append(str(err))
        for problem in damaged:
            typer.echo(f"damaged: {problem}; `ehnas resume {run}` redoes that step", err=True)
        if damaged:
            raise typer.Exit(1)
