"""Failures inside a run: one box on the terminal, the tracebacks in the run's log file.

Prefect logs a failing task or flow run with its traceback (``exc_info``), and its console
handler printed every one of them (181 lines on a full disk) before the box that `ehnas run`
promises as the whole message. While a run executes, the console handlers drop records that
carry a traceback; `<run folder>/ehnas.log` receives every Prefect record, tracebacks included,
and the box names that file. The Prefect UI still gets them through Prefect's API handler.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

LOG_NAME = "ehnas.log"
# Prefect's loggers whose handlers may print to the terminal (run loggers propagate to "prefect").
PREFECT_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.flow_engine", "prefect.task_engine")


def _no_traceback(record: logging.LogRecord) -> bool:
    return not record.exc_info and not record.exc_text


def _console_handlers() -> list[logging.Handler]:
    found: list[logging.Handler] = []
    for name in ("", *PREFECT_LOGGERS):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler) and handler not in found:
                found.append(handler)
    return found


@contextlib.contextmanager
def tracebacks_to_file(run_dir: Path) -> Iterator[Path]:
    """Within the block, Prefect's tracebacks go to ``run_dir/ehnas.log`` only; yields its path."""
    path = run_dir / LOG_NAME
    run_dir.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("prefect")
    logger.addHandler(to_file)
    consoles = _console_handlers()
    for handler in consoles:
        handler.addFilter(_no_traceback)
    try:
        yield path
    finally:
        for handler in consoles:
            handler.removeFilter(_no_traceback)
        logger.removeHandler(to_file)
        to_file.close()
