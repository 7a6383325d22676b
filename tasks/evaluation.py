"""Scoring task: one task scores one batch of (architecture, missing proxies) work items.

The task is a function of values: the scoring setup (`Scoring`: a data reference, the proxy
names, the batch size and the seed), the space as its JSON dict and the work. It needs no run
folder and no evaluation store, so it runs as well on a remote worker as in a thread; the flow
looks the scores up in the store before and stores the new records after (see
`nas_lib.evaluation`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from nas_lib.evaluation import EVALUATION_SCHEMA, EvalRecord, score_work
from tasks.context import on_worker
from tasks.data_ref import DataRef, proxy_batch
from tasks.retry import retry_transient
from tasks.spaces import space_from_dict

if TYPE_CHECKING:
    from nas_lib.proxies.base import Proxy, ProxyResult


def make_proxy(name: str) -> Proxy:
    """The registered proxy `name` (KeyError lists the known ones)."""
    from nas_lib.proxies import get_proxy

    return get_proxy(name)


class Scoring(BaseModel):
    """What every score of a run depends on besides the architecture (a small frozen value)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: DataRef
    proxies: tuple[str, ...]
    proxy_batch: int
    seed: int

    @classmethod
    def of(cls, config: Any) -> Scoring:
        """The scoring setup of a `PipelineConfig`."""
        return cls(data=DataRef.of(config), proxies=tuple(config.evaluation.proxies), proxy_batch=config.data.proxy_batch, seed=config.seed)

    def proxy_objects(self) -> list[Proxy]:
        return [make_proxy(name) for name in self.proxies]

    def primary(self) -> Proxy:
        """The proxy whose score is the search fitness (the first one)."""
        return make_proxy(self.proxies[0])

    def data_fingerprint(self) -> str:
        return str(self.data.load().fingerprint)

    def batch(self) -> Any:
        """The fixed, seeded batch of images every proxy scores on."""
        return proxy_batch(self.data.load(), self.proxy_batch, self.seed)


def shared_scorer(space: Any, spec: Any, proxies: Sequence[Proxy], batch: Any, seed: int, device: str) -> dict[str, ProxyResult]:
    """Scores several proxies on one built network (model and passes shared)."""
    from nas_lib.proxies import score_proxies

    return score_proxies(space, spec, [p.name for p in proxies], batch, seed, device)


def score_records(scoring: Scoring, space: dict[str, Any], work: Sequence[tuple[str, Sequence[str]]], device: str = "cpu") -> list[EvalRecord]:
    """Scores each ``(arch, proxy names)`` work item of the space; new records, failures included."""
    return score_work(
        space_from_dict(space),
        work,
        scoring.proxy_objects(),
        scoring.batch(),
        data_fingerprint=scoring.data_fingerprint(),
        seed=scoring.seed,
        device=device,
        scorer=shared_scorer,
    )


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


@task(
    name="score-batch",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
    task_run_name="score-batch-{label}",
)
def score_batch(
    scoring: Scoring,
    space: dict[str, Any],
    work: list[tuple[str, list[str]]],
    device: str,
    label: str = "",
    gated: bool = False,
    timeout_s: float | None = None,
    torch_threads: int | None = None,
) -> list[dict[str, Any]]:
    """Scores one batch of work items on one device, resolved where the task runs (`on_worker`;
    failed rows recorded, transient faults retried); with `timeout_s`, in a child process killed
    when the limit passes (`tasks.child`)."""
    device, threads = on_worker(device, torch_threads)
    with device_slot(device, gated):
        if timeout_s is None:
            return score_rows(scoring, space, work, device)
        from tasks.child import run_in_child

        what, key = f"score-batch-{label}", "execution.batch_timeout_s"
        return run_in_child(score_rows, (scoring, space, work, device), limit_s=timeout_s, key=key, what=what, torch_threads=threads)


def score_rows(scoring: Scoring, space: dict[str, Any], work: Sequence[tuple[str, Sequence[str]]], device: str) -> list[dict[str, Any]]:
    """`score_records` as rows (what a child process sends back)."""
    return [r.to_row() for r in score_records(scoring, space, work, device)]


def evaluation_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of ``06_evaluations``: one per (arch_id, proxy), duplicates dropped (later wins)."""
    return list({(r["arch_id"], r["proxy"]): r for r in rows}.values())


__all__ = ["EVALUATION_SCHEMA", "Scoring", "evaluation_rows", "make_proxy", "score_batch", "score_records"]
