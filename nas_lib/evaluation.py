"""Batched, failure-tolerant proxy scoring with a persistent per-architecture evaluation store.

A score is keyed by (arch_id, data fingerprint, proxy name + version, seed). The store is one
SQLite file shared by every run under a runs root, so a rerun, a resumed run or a second run on
the same data never pays twice for a score. In the pipeline one process writes it, the flow:
it looks up what is known (`split_cached`), sends only the missing (arch, proxy) work to the
workers (`score_work`, which needs no store), and stores each batch's new records as soon as
the batch is back (`EvaluationStore.put_many`). Several flows may share the file at once: WAL
mode lets readers run beside the writer, and "insert or ignore" on the key means a score two
flows computed together is stored once and neither write is lost.

Failures are data: an architecture that cannot be built, an out-of-memory error on one
architecture or a proxy that raises is recorded with ``state="failed"`` and its error, and the
batch goes on. The proxy turns such a failure into a failed `ProxyResult` where it happens
(`nas_lib.proxies.base.ScoringContext.run`); this module only copies that typed result into an
`EvalRecord`. An exception that still comes out of a scorer is no architecture's failure (a
transient I/O or connection fault, a bug): it propagates, and the task's retry policy decides.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from nas_lib.proxies.base import Proxy, ProxyResult, ProxyState

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError)

EVALUATION_SCHEMA = pa.schema(
    [
        ("arch_id", pa.string()),
        ("arch", pa.string()),
        ("proxy", pa.string()),
        ("proxy_version", pa.string()),
        ("data_fingerprint", pa.string()),
        ("seed", pa.int64()),
        ("value", pa.float64()),
        ("state", pa.string()),
        ("error", pa.string()),
        ("seconds", pa.float64()),
        ("device", pa.string()),
        ("cached", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class EvalRecord:
    """One proxy score of one architecture (a row of ``06_evaluations.parquet``)."""

    arch_id: str
    arch: str
    proxy: str
    proxy_version: str
    data_fingerprint: str
    seed: int
    value: float | None  # None when failed
    state: ProxyState
    error: str | None
    seconds: float
    device: str
    cached: bool = False

    @classmethod
    def of(cls, arch_id: str, arch: str, proxy: Proxy, data_fingerprint: str, seed: int, device: str, result: ProxyResult) -> EvalRecord:
        """The record of `proxy`'s `result` on one architecture (its state and error as they are)."""
        value = float(result.value) if result.ok else None
        return cls(
            arch_id, arch, proxy.name, str(proxy.version), data_fingerprint, int(seed), value, result.state, result.error, result.seconds, device
        )

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return (self.arch_id, self.data_fingerprint, self.proxy, self.proxy_version, self.seed)

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


_COLUMNS = ("arch_id", "arch", "proxy", "proxy_version", "data_fingerprint", "seed", "value", "state", "error", "seconds", "device")


def _cached_record(row: Sequence[Any]) -> EvalRecord:
    """The record of one ``SELECT`` row of `_COLUMNS`, marked as read from the store."""
    return EvalRecord(**dict(zip(_COLUMNS, row)), cached=True)


Key = tuple[str, str, str, str, int]  # arch_id, data fingerprint, proxy, proxy version, seed


class EvaluationStore:
    """Persistent scores in one SQLite file; safe for several threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._session() as con:
            con.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
            con.execute(
                "CREATE TABLE IF NOT EXISTS evals (arch_id TEXT, arch TEXT, proxy TEXT, proxy_version TEXT,"
                " data_fingerprint TEXT, seed INTEGER, value REAL, state TEXT, error TEXT, seconds REAL,"
                " device TEXT, created REAL, PRIMARY KEY (arch_id, data_fingerprint, proxy, proxy_version, seed))"
            )

    @contextlib.contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """One connection, committed on success and always closed."""
        con = sqlite3.connect(self.path, timeout=60.0)  # a writer waits for another, it does not fail
        try:
            with con:
                yield con
        finally:
            con.close()

    def get(self, key: Key) -> EvalRecord | None:
        """The stored record for `key`, marked ``cached=True``, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[Key]) -> dict[Key, EvalRecord]:
        """The stored records of those `keys` that have one, marked ``cached=True``."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM evals WHERE arch_id=? AND data_fingerprint=? AND proxy=? AND proxy_version=? AND seed=?"
        out: dict[Key, EvalRecord] = {}
        with self._session() as con:
            for key in dict.fromkeys(keys):
                row = con.execute(query, key).fetchone()
                if row is not None:
                    out[key] = _cached_record(row)
        return out

    def select(self, data_fingerprint: str, seed: int, proxies: Iterable[tuple[str, str]]) -> list[EvalRecord]:
        """Every stored record of these (proxy name, version) pairs on this data and seed, ``cached=True``."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM evals WHERE data_fingerprint=? AND seed=? AND proxy=? AND proxy_version=?"
        with self._session() as con:
            return [_cached_record(row) for name, version in proxies for row in con.execute(query, (data_fingerprint, int(seed), name, str(version)))]

    def put(self, record: EvalRecord) -> None:
        """Stores `record`; the first score of a key wins (a race between writers is harmless)."""
        self.put_many([record])

    def put_many(self, records: Iterable[EvalRecord]) -> int:
        """Stores `records` in one transaction (first score of a key wins); returns how many were new."""
        now = time.time()
        values = [[getattr(r, c) for c in _COLUMNS] + [now] for r in records]
        if not values:
            return 0
        with self._session() as con:
            before = con.total_changes
            con.executemany(f"INSERT OR IGNORE INTO evals ({', '.join(_COLUMNS)}, created) VALUES ({', '.join('?' * 12)})", values)
            return con.total_changes - before

    def count(self) -> int:
        """Number of stored scores."""
        with self._session() as con:
            return int(con.execute("SELECT COUNT(*) FROM evals").fetchone()[0])


MultiScorer = Callable[[Any, Any, Sequence["Proxy"], Any, int, str], Mapping[str, "ProxyResult"]]


def _score_each(space: Any, spec: Any, proxies: Sequence[Proxy], batch: Any, seed: int, device: str) -> dict[str, ProxyResult]:
    """Calls each proxy's `score` (which returns a failed result rather than raising)."""
    return {p.name: p.score(space, spec, batch, seed, device) for p in proxies}


def score_one(
    space: Any, spec: Any, proxies: Sequence[Proxy], batch: Any, *, data_fingerprint: str, seed: int, device: str, scorer: MultiScorer | None = None
) -> list[EvalRecord]:
    """Scores `spec` with `proxies`: one record per proxy, a failed score included as ``failed``.

    Args:
        scorer: scores several proxies of one spec at once and returns one `ProxyResult` per proxy
            name; None calls each proxy's `score`.
    """
    arch_id, arch = space.arch_id(spec), space.to_string(spec)
    results = (scorer or _score_each)(space, spec, proxies, batch, seed, device)
    return [EvalRecord.of(arch_id, arch, p, data_fingerprint, seed, device, results[p.name]) for p in proxies]


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
    """Scores every spec with every proxy, reusing and filling `store` (one architecture at a time).

    Args:
        space: the `SearchSpace` the specs belong to (builds the models).
        specs: architectures to score (duplicates are scored once).
        proxies: `nas_lib.proxies.base.Proxy` objects (`name`, `version`, `score(...) -> ProxyResult`).
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
        OSError, ConnectionError, TimeoutError: transient faults (a failed score is a record).
    """
    records: list[EvalRecord] = []
    for arch in dict.fromkeys(space.to_string(s) for s in specs):
        known, work = split_cached(store, space, [arch], proxies, data_fingerprint=data_fingerprint, seed=seed)
        fresh = score_work(space, work, proxies, batch, data_fingerprint=data_fingerprint, seed=seed, device=device, scorer=scorer)
        if store is not None:
            store.put_many(fresh)
        records += assemble(space, [arch], proxies, [*known.values(), *fresh])
    return records


def score_key(arch_id: str, proxy: Proxy, data_fingerprint: str, seed: int) -> Key:
    """The store key of one proxy score."""
    return (arch_id, data_fingerprint, proxy.name, str(proxy.version), int(seed))


def split_cached(
    store: EvaluationStore | None, space: Any, archs: Sequence[str], proxies: Sequence[Proxy], *, data_fingerprint: str, seed: int
) -> tuple[dict[Key, EvalRecord], list[tuple[str, list[str]]]]:
    """What `store` already knows about `archs`, and the work left.

    Returns:
        The cached records by key, and one ``(arch, [missing proxy names])`` per unique
        architecture that lacks a score, in input order (the input of `score_work`).
    """
    ids = {arch: space.arch_id(space.from_string(arch)) for arch in dict.fromkeys(archs)}
    keys = {(arch, p.name): score_key(ids[arch], p, data_fingerprint, seed) for arch in ids for p in proxies}
    known = store.get_many(keys.values()) if store is not None else {}
    work = [(arch, [p.name for p in proxies if keys[arch, p.name] not in known]) for arch in ids]
    return known, [(arch, names) for arch, names in work if names]


def score_work(
    space: Any,
    work: Sequence[tuple[str, Sequence[str]]],
    proxies: Sequence[Proxy],
    batch: Any,
    *,
    data_fingerprint: str,
    seed: int,
    device: str = "cpu",
    scorer: MultiScorer | None = None,
) -> list[EvalRecord]:
    """Scores each ``(arch, proxy names)`` item; no store involved (what a remote worker runs).

    Raises:
        OSError, ConnectionError, TimeoutError: transient faults (a failed score is a record).
    """
    by_name = {p.name: p for p in proxies}
    out: list[EvalRecord] = []
    for arch, names in work:
        chosen = [by_name[n] for n in names]
        out += score_one(space, space.from_string(arch), chosen, batch, data_fingerprint=data_fingerprint, seed=seed, device=device, scorer=scorer)
    return out


def assemble(space: Any, archs: Sequence[str], proxies: Sequence[Proxy], records: Iterable[EvalRecord]) -> list[EvalRecord]:
    """One record per (unique arch, proxy), in input order, picked from `records` (later ones win).

    Raises:
        KeyError: a score of `archs` is missing from `records`.
    """
    by_key = {(r.arch_id, r.proxy): r for r in records}
    ids = [space.arch_id(space.from_string(a)) for a in dict.fromkeys(archs)]
    return [by_key[arch_id, p.name] for arch_id in ids for p in proxies]


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
