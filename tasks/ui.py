"""What a user watching a run sees: Prefect UI artifacts (progress, top-k tables, the run
summary) and the same progress in the terminal.

Artifacts are created only inside a flow or task run; called elsewhere (the bare benchmark, a
notebook) they do nothing, so the same code paths run with and without Prefect. Every progress
update is also one log line (Prefect's run logger inside a run, the ``ehnas`` logger outside),
and, when the terminal is interactive, a rich progress bar that disappears when it completes.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID


def _in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def artifact_key(text: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def run_logger() -> Any:
    """Prefect's run logger inside a flow or task run (it reaches the UI), else ``ehnas``'s."""
    if _in_run():
        from prefect import get_run_logger

        return get_run_logger()
    return logging.getLogger("ehnas")


@dataclass
class Progress:
    """One piece of progress: a Prefect progress artifact (None outside a run) and a terminal bar."""

    description: str
    artifact_id: UUID | None
    bar: Any = None


_TERMINAL: dict[str, Any] = {}
_TERMINAL_LOCK = threading.Lock()


def _terminal_bar(description: str) -> Any:
    """A rich progress task when stderr is a terminal (never in CI logs or under a worker)."""
    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    with _TERMINAL_LOCK:
        if "progress" not in _TERMINAL:
            _TERMINAL["progress"] = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[detail]}"),
                transient=True,
            )
            _TERMINAL["progress"].start()
        return _TERMINAL["progress"].add_task(description, total=None, detail="")


def progress_start(key: str, description: str) -> Progress:
    """Starts a progress record: an artifact under `key` in the UI and a bar in the terminal."""
    artifact = None
    if _in_run():
        from prefect.artifacts import create_progress_artifact

        # sync_compatible: called outside an event loop it returns the UUID, not a coroutine
        artifact = cast("UUID", create_progress_artifact(0.0, key=artifact_key(key), description=description))
    return Progress(description, artifact, _terminal_bar(description))


def progress_update(progress: Progress, done: int, total: int, note: str = "") -> None:
    """`done` of `total` finished: the artifact's percentage, the bar and one log line."""
    progress_show(progress, done, total, f"{done}/{total}{f' ({note})' if note else ''}")


def progress_show(progress: Progress, done: float, total: float, detail: str, log: bool = True) -> None:
    """`done` of `total` units: the artifact's percentage (its description followed by
    `detail`), the bar and, when `log`, the log line ``<description>: <detail>``."""
    if progress.artifact_id is not None:
        from prefect.artifacts import update_progress_artifact

        update_progress_artifact(progress.artifact_id, 100.0 * min(done / total, 1.0) if total > 0 else 100.0, f"{progress.description}: {detail}")
    if progress.bar is not None:
        _update_bar(progress, done, total, detail)
    if log:
        run_logger().info("%s: %s", progress.description, detail)


def _update_bar(progress: Progress, done: float, total: float, detail: str) -> None:
    bars = _TERMINAL["progress"]
    bars.update(progress.bar, completed=done, total=total, detail=detail)
    if done >= total:
        with _TERMINAL_LOCK:
            bars.remove_task(progress.bar)
            if not bars.tasks:
                bars.stop()
                _TERMINAL.pop("progress")
        progress.bar = None


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return None  # the API rejects NaN in JSON
        return float(f"{value:.6g}")  # a table cell, not a record: 0.0288632, not 0.028863166997325607
    return value


def numbers_first(row: dict[str, Any]) -> dict[str, Any]:
    """The row's columns reordered for a table on screen: numbers first, then text, the long
    architecture string (``arch``) last."""
    numbers = [k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "arch"]
    text = [k for k in row if k not in numbers and k != "arch"]
    return {k: row[k] for k in [*numbers, *text, *(["arch"] if "arch" in row else [])]}


def table(key: str, rows: Sequence[dict[str, Any]], description: str) -> None:
    """A table artifact (`numbers_first` columns; floats to 6 significant digits; NaN shown empty)."""
    if not _in_run():
        return
    from prefect.artifacts import create_table_artifact

    create_table_artifact([{k: _clean(v) for k, v in numbers_first(r).items()} for r in rows], key=artifact_key(key), description=description)


def markdown(key: str, text: str, description: str) -> None:
    if not _in_run():
        return
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(text, key=artifact_key(key), description=description)
