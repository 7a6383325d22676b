"""`ehnas run`, `ehnas resume <run>`, `ehnas report <run>`: the pipeline from the command line."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from tasks.config import describe_fields

RUN_HELP = (
    "Run the architecture search pipeline (Prefect flow; local ephemeral Prefect and MLflow when no "
    "server is configured). With no options: embedded knowledge, offline pruning, scikit-learn digits.\n\n"
    "Config fields (YAML keys / --set dotted.key=value), with defaults:\n\n"
    + "\n\n".join(describe_fields())
)


def _execute(config: object, redo: Optional[str], wait: bool = False) -> None:
    from ehnas.prefect_server import local_prefect
    from ehnas.runlock import cli_run_lock
    from flows.pipeline import nas_pipeline, prefect_settings
    from tasks.context import plan_devices, step_path

    try:
        plan_devices(config.device)  # said before Prefect starts (the flow checks again where it runs)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="device") from None
    start = time.perf_counter()
    # one writer per run name (before Prefect starts); a Prefect server that dies with this process
    with cli_run_lock(config.run_dir(), wait), prefect_settings(home=".prefect" if "PREFECT_API_URL" not in os.environ else None), local_prefect():
        result = nas_pipeline(config=config, redo=redo)
    run_dir = Path(result["run_dir"])
    typer.echo(f"\nrun folder: {run_dir.resolve()}  ({time.perf_counter() - start:.1f} s; steps run now: {', '.join(result['ran']) or 'none'})")
    registry = step_path(run_dir, "09_registry")
    if registry.exists():
        from nas_lib.artifacts import read_table

        row = read_table(registry).iloc[0].to_dict()
        where = f"{row['model_name']} v{row['version']} @{row['alias']} at {row['tracking_uri']}" if row["state"] == "ok" else row["note"]
        typer.echo(f"registered model: {where}")


def run_folder(run: str, runs_root: Path) -> Path:
    """A run given by name (under `runs_root`) or path; a clear error when it is not a run folder."""
    folder = Path(run) if Path(run).is_dir() else runs_root / run
    if not (folder / "config.json").exists():
        raise typer.BadParameter(f"{folder} is not a run folder (no config.json)", param_hint="RUN")
    return folder


def register(app: typer.Typer) -> None:
    """Adds `run`, `resume` and `report` to the root app."""

    @app.command("run", help=RUN_HELP)
    def run(
        config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML file of config fields.")] = None,
        set_: Annotated[list[str], typer.Option("--set", "-s", help="Override a field: dotted.key=value (repeatable).")] = [],  # noqa: B006
        run_name: Annotated[Optional[str], typer.Option("--run-name", help="Shortcut for --set run_name=NAME.")] = None,
        redo: Annotated[Optional[str], typer.Option("--redo", help="Rerun this step (e.g. 06_evaluations) and every later one.")] = None,
        wait: Annotated[bool, typer.Option("--wait", help="If this run is already running, wait for it instead of failing.")] = False,
    ) -> None:
        from tasks.config import load_config

        overrides = list(set_) + ([f"run_name={run_name}"] if run_name else [])
        cfg = load_config(config, overrides)
        _execute(cfg, redo, wait)

    @app.command("resume", help="Resume a run from its folder: finished steps and stored evaluations are reused.")
    def resume(
        run: Annotated[str, typer.Argument(help="Run name (under --runs-root) or a run folder path.")],
        runs_root: Annotated[Path, typer.Option("--runs-root", help="Folder holding run folders.")] = Path("runs"),
        redo: Annotated[Optional[str], typer.Option("--redo", help="Rerun this step (e.g. 06_evaluations) and every later one.")] = None,
        wait: Annotated[bool, typer.Option("--wait", help="If this run is already running, wait for it instead of failing.")] = False,
    ) -> None:
        from tasks.context import load_config as load_run_config

        folder = run_folder(run, runs_root)
        cfg = load_run_config(folder).model_copy(update={"runs_root": str(folder.parent), "run_name": folder.name})
        _execute(cfg, redo, wait)

    @app.command("report", help="Print a run's summary from its Parquet files and write search-progress and Pareto plots.")
    def report(
        run: Annotated[str, typer.Argument(help="Run name (under --runs-root) or a run folder path.")],
        runs_root: Annotated[Path, typer.Option("--runs-root", help="Folder holding run folders.")] = Path("runs"),
        out: Annotated[Optional[Path], typer.Option("--out", help="Folder for the PNG plots (default <run>/plots).")] = None,
    ) -> None:
        from nas_lib.report import summary_markdown, write_plots

        folder = run_folder(run, runs_root)
        typer.echo(summary_markdown(folder))
        for path in write_plots(folder, out):
            typer.echo(f"plot: {path}")
