"""Prefect UI artifacts (progress bars, top-k tables, the run summary).

They are created only inside a flow or task run; called elsewhere (the bare benchmark, a
notebook) they do nothing, so the same code paths run with and without Prefect.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID


def _in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def artifact_key(text: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def progress_start(key: str, description: str) -> UUID | None:
    if not _in_run():
        return None
    from prefect.artifacts import create_progress_artifact

    return create_progress_artifact(0.0, key=artifact_key(key), description=description)


def progress_update(artifact_id: UUID | None, done: int, total: int) -> None:
    if artifact_id is None:
        return
    from prefect.artifacts import update_progress_artifact

    update_progress_artifact(artifact_id, 100.0 * done / max(total, 1))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None  # the API rejects NaN in JSON
    return value


def table(key: str, rows: Sequence[dict[str, Any]], description: str) -> None:
    if not _in_run():
        return
    from prefect.artifacts import create_table_artifact

    create_table_artifact([{k: _clean(v) for k, v in r.items()} for r in rows], key=artifact_key(key), description=description)


def markdown(key: str, text: str, description: str) -> None:
    if not _in_run():
        return
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(text, key=artifact_key(key), description=description)
