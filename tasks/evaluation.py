"""Scoring tasks: one task scores one batch of architectures with every configured proxy.

The persistent `EvaluationStore` is the cache (keyed by arch_id, data fingerprint, proxy name +
version and seed), not Prefect's per-run result cache: a rerun, a resumed run and a new run on
the same data all reuse it, and a batch killed half way keeps the rows it finished.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from nas_lib.artifacts import write_table
from nas_lib.evaluation import EVALUATION_SCHEMA, EvaluationStore, score_architectures
from tasks.context import load_config, load_data, load_space, proxy_batch, step_path
from tasks.retry import retry_transient


def make_proxy(name: str) -> Any:
    """The registered proxy `name` (KeyError lists the known ones)."""
    try:
        from nas_lib.proxies import get_proxy
    except ImportError:  # the proxies package exposes get_proxy once its modules land
        from nas_lib.proxies.base import PROXIES

        return PROXIES.get(name)()
    return get_proxy(name)


def primary_proxy(run_dir: str | Path) -> Any:
    """The proxy whose score is the search fitness (the first configured one)."""
    return make_proxy(load_config(run_dir).evaluation.proxies[0])


def shared_scorer(space: Any, spec: Any, proxies: Sequence[Any], batch: Any, seed: int, device: str) -> dict[str, Any]:
    """Scores several proxies on one built network (model and passes shared)."""
    from nas_lib.proxies import score_proxies

    return score_proxies(space, spec, [p.name for p in proxies], batch, seed, device)


@contextlib.contextmanager
def device_slot(device: str, gated: bool) -> Iterator[None]:
    """Holds the Prefect concurrency slot of one GPU so two batches never share it."""
    if not gated:
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(gpu_limit_name(device), occupy=1):
        yield


def gpu_limit_name(device: str) -> str:
    return f"ehnas-{device.replace(':', '-')}"


def score_rows(run_dir: str | Path, archs: Sequence[str], device: str = "cpu") -> list[dict[str, Any]]:
    """Scores architectures (canonical strings) of the run's space; returns evaluation rows."""
    cfg = load_config(run_dir)
    space, data = load_space(run_dir), load_data(run_dir)
    proxies = [make_proxy(name) for name in cfg.evaluation.proxies]
    records = score_architectures(
        space, [space.from_string(a) for a in archs], proxies, proxy_batch(data, cfg.data.proxy_batch, cfg.seed),
        data_fingerprint=data.fingerprint, seed=cfg.seed, device=device, store=EvaluationStore(cfg.store_path()),
        scorer=shared_scorer,
    )
    return [r.to_row() for r in records]


@task(name="score-batch", retries=2, retry_delay_seconds=1, retry_condition_fn=retry_transient,
      cache_policy=NO_CACHE, task_run_name="score-batch-{label}")
def score_batch(run_dir: str, archs: list[str], device: str, label: str = "", gated: bool = False) -> list[dict[str, Any]]:
    """Scores one batch of architectures on one device (failed rows recorded, transient faults retried)."""
    with device_slot(device, gated):
        return score_rows(run_dir, archs, device)


def write_evaluations(run_dir: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """``06_evaluations.parquet``: one row per (arch_id, proxy), duplicates dropped."""
    unique = {(r["arch_id"], r["proxy"]): r for r in rows}
    return write_table(step_path(run_dir, "06_evaluations"), list(unique.values()), EVALUATION_SCHEMA)
