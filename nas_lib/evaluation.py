"""Batched, failure-tolerant proxy scoring with a persistent per-architecture evaluation store.

A score is keyed by (arch_id, data fingerprint, proxy name + version, seed). The store is one
SQLite file shared by every run under a runs root, so a rerun, a resumed run or a second run on
the same data never pays twice for a score, and a run killed mid-batch keeps every row it
finished (each row is committed on its own). SQLite, not Parquet, because rows arrive one at a
time from several workers; the run's Parquet artifact is written from the store afterwards.

Failures are data: an architecture that cannot be built, an out-of-memory error on one
architecture or a proxy that raises is recorded with ``state="failed"`` and its error, and the
batch goes on. Only transient faults (I/O, connection) propagate so the caller can retry them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

FAULT_ENV = "EHNAS_FAULT_AFTER_EVALS"
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError)

EVALUATION_SCHEMA = pa.schema([
    ("arch_id", pa.string()), ("arch", pa.string()), ("proxy", pa.string()), ("proxy_version", pa.string()),
    ("data_fingerprint", pa.string()), ("seed", pa.int64()), ("value", pa.float64()), ("state", pa.string()),
    ("error", pa.string()), ("seconds", pa.float64()), ("device", pa.string()), ("cached", pa.bool_()),
])


class InjectedFault(RuntimeError):
    """Raised on purpose after `EHNAS_FAULT_AFTER_EVALS` fresh evaluations (crash/resume tests)."""


class Proxy(Protocol):
    name: str
    version: str
    higher_is_better: bool

    def score(self, space: Any, spec: Any, batch: Any, seed: int, device: str) -> Any: ...


@dataclass(frozen=True)
class EvalRecord:
    """One proxy score of one architecture (a row of ``06_evaluations.parquet``)."""

    arch_id: str
    arch: str
    proxy: str
    proxy_version: str
    data_fingerprint: str
    seed: int
    value: float | None
    state: str  # "ok" or "failed" (the proxies' vocabulary)
    error: str | None
    seconds: float
    device: str
    cached: bool = False

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return (self.arch_id, self.data_fingerprint, self.proxy, self.proxy_version, self.seed)

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


_COLUMNS = ("arch_id", "arch", "proxy", "proxy_version", "data_fingerprint", "seed", "value", "state", "error", "seconds", "device")


class EvaluationStore:
    """Persistent scores in one SQLite file; safe for several threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
            con.execute(
                "CREATE TABLE IF NOT EXISTS evals (arch_id TEXT, arch TEXT, proxy TEXT, proxy_version TEXT,"
                " data_fingerprint TEXT, seed INTEGER, value REAL, state TEXT, error TEXT, seconds REAL,"
                " device TEXT, created REAL, PRIMARY KEY (arch_id, data_fingerprint, proxy, proxy_version, seed))"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60.0)

    def get(self, key: tuple[str, str, str, str, int]) -> EvalRecord | None:
        """The stored record for `key`, marked ``cached=True``, or None."""
        with self._connect() as con:
            row = con.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM evals WHERE arch_id=? AND data_fingerprint=? AND proxy=?"
                " AND proxy_version=? AND seed=?", key,
            ).fetchone()
        return None if row is None else EvalRecord(*row, cached=True)

    def put(self, record: EvalRecord) -> None:
        """Stores `record`; the first score of a key wins (a race between workers is harmless)."""
        values = [getattr(record, c) for c in _COLUMNS] + [time.time()]
        with self._connect() as con:
            con.execute(f"INSERT OR IGNORE INTO evals ({', '.join(_COLUMNS)}, created) VALUES ({', '.join('?' * 12)})", values)

    def count(self) -> int:
        """Number of stored scores."""
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM evals").fetchone()[0])


class _FaultCounter:
    """Counts fresh evaluations in this process and raises once `EHNAS_FAULT_AFTER_EVALS` is reached."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fresh = 0

    def tick(self, n: int = 1) -> None:
        """Counts `n` evaluations about to run; raises instead when they would pass the limit."""
        limit = os.environ.get(FAULT_ENV)
        with self.lock:
            if limit and self.fresh + n > int(limit):
                raise InjectedFault(f"{FAULT_ENV}={limit}: injected fault after {self.fresh} fresh evaluations")
            self.fresh += n


FAULTS = _FaultCounter()


def _is_oom(err: BaseException) -> bool:
    return "out of memory" in str(err).lower() or type(err).__name__ == "OutOfMemoryError"


def _release_memory(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


MultiScorer = Callable[[Any, Any, Sequence[Proxy], Any, int, str], Mapping[str, Any]]


@dataclass(frozen=True)
class _Failed:
    value: None = None
    seconds: float = 0.0
    state: str = "failed"
    error: str | None = None


def _failure_text(err: BaseException) -> str:
    return f"oom: {err}" if _is_oom(err) else f"{type(err).__name__}: {err}"


def _score_each(space: Any, spec: Any, proxies: Sequence[Proxy], batch: Any, seed: int, device: str) -> dict[str, Any]:
    """Calls each proxy's `score`; one proxy failing does not cost the others their score."""
    out: dict[str, Any] = {}
    for p in proxies:
        try:
            out[p.name] = p.score(space, spec, batch, seed, device)
        except (InjectedFault, *TRANSIENT_ERRORS):
            raise
        except Exception as err:  # noqa: BLE001 - recorded as this proxy's failure
            out[p.name] = _Failed(error=_failure_text(err))
            if _is_oom(err):
                _release_memory(device)
    return out


def score_one(space: Any, spec: Any, proxies: Sequence[Proxy], batch: Any, *, data_fingerprint: str, seed: int,
              device: str, scorer: MultiScorer | None = None) -> list[EvalRecord]:
    """Scores `spec` with `proxies`; a deterministic failure becomes ``failed`` records, not an error."""
    arch_id, arch = space.arch_id(spec), space.to_string(spec)
    start = time.perf_counter()
    try:
        results: Mapping[str, Any] = (scorer or _score_each)(space, spec, proxies, batch, seed, device)
        failure = None
    except (InjectedFault, *TRANSIENT_ERRORS):
        raise
    except Exception as err:  # noqa: BLE001 - any other failure belongs to this architecture only
        results, failure = {}, _failure_text(err)
        if _is_oom(err):
            _release_memory(device)
    elapsed = time.perf_counter() - start
    out = []
    for proxy in proxies:
        r = results.get(proxy.name)
        value = None if r is None or r.value is None or r.value != r.value else float(r.value)
        state = "ok" if value is not None and getattr(r, "state", "ok") == "ok" else "failed"
        error = failure if r is None else (r.error or (None if state == "ok" else "proxy returned NaN"))
        seconds = float(getattr(r, "seconds", elapsed)) if r is not None else elapsed
        out.append(EvalRecord(arch_id, arch, proxy.name, str(proxy.version), data_fingerprint, int(seed), value, state, error, seconds, device))
    return out


def score_architectures(
    space: Any,
    specs: Sequence[Any],
    proxies: Sequence[Proxy],
    batch: Any,
    *,
    data_fingerprint: str,
    seed: int,
    device: str = "cpu",
    store: EvaluationStore | None = None,
    scorer: MultiScorer | None = None,
) -> list[EvalRecord]:
    """Scores every spec with every proxy, reusing and filling `store`.

    Args:
        space: the `SearchSpace` the specs belong to (builds the models).
        specs: architectures to score (duplicates are scored once).
        proxies: proxy objects (`name`, `version`, `score(space, spec, batch, seed, device)`).
        batch: the fixed data batch every proxy sees.
        data_fingerprint: identifies the data the batch came from (part of the cache key).
        seed: proxy seed (part of the cache key).
        device: torch device string for this batch.
        store: persistent store; None scores without caching.
        scorer: scores several proxies of one spec at once (sharing its model); None calls
            each proxy's `score`.

    Returns:
        One record per (unique spec, proxy), in input order; ``cached`` tells which were reused.

    Raises:
        InjectedFault: the crash hook fired. OSError/ConnectionError/TimeoutError: transient faults.
    """
    records: list[EvalRecord] = []
    seen: set[str] = set()
    for spec in specs:
        arch_id = space.arch_id(spec)
        if arch_id in seen:
            continue
        seen.add(arch_id)
        keys = {p.name: (arch_id, data_fingerprint, p.name, str(p.version), int(seed)) for p in proxies}
        hits = {name: store.get(key) for name, key in keys.items()} if store is not None else {}
        missing = [p for p in proxies if hits.get(p.name) is None]
        if missing:
            FAULTS.tick(len(missing))
            for record in score_one(space, spec, missing, batch, data_fingerprint=data_fingerprint, seed=seed, device=device, scorer=scorer):
                hits[record.proxy] = record
                if store is not None:
                    store.put(record)
        records += [hits[p.name] for p in proxies]
    return records


def fitness_of(records: Iterable[EvalRecord], proxy: str, higher_is_better: bool) -> dict[str, float]:
    """arch_id -> fitness (higher is better) from `proxy`'s scores; failures get NaN (the strategies' failure mark)."""
    out: dict[str, float] = {}
    for r in records:
        if r.proxy != proxy:
            continue
        if r.state != "ok" or r.value is None:
            out[r.arch_id] = float("nan")
        else:
            out[r.arch_id] = r.value if higher_is_better else -r.value
    return out


def split_batches(items: Sequence[Any], size: int) -> list[list[Any]]:
    """Consecutive chunks of at most `size` items (the unit of one pipeline task)."""
    if size < 1:
        raise ValueError("batch size must be >= 1")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
