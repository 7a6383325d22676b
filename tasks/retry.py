"""When a failed task is worth retrying: transient faults only.

A deterministic failure (an invalid spec, out of memory on that architecture, a bug) fails the
same way every time, so retrying it only wastes the budget; it is recorded instead. I/O hiccups,
connection resets, timeouts, rate limits and server errors of the LLM endpoint are retried.
"""

from __future__ import annotations

from typing import Any

from nas_lib.evaluation import TRANSIENT_ERRORS


def _llm_transient() -> tuple[type[BaseException], ...]:
    import openai

    return (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError)


def is_transient(err: BaseException | None) -> bool:
    """True for faults that may pass on a second try (never for an OOM)."""
    if err is None:
        return False
    if "out of memory" in str(err).lower():
        return False
    return isinstance(err, TRANSIENT_ERRORS + _llm_transient())


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the task failed on a transient fault."""
    try:
        state.result(raise_on_failure=True)
    except BaseException as err:  # noqa: BLE001 - the failure itself is what we inspect
        return is_transient(err)
    return False
