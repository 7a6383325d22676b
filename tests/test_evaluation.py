"""Evaluation store and failure-tolerant batched scoring (fake proxies: no model is built)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nas_lib import evaluation as ev
from nas_lib.proxies.base import Proxy, ScoringContext
from nas_lib.space import NB201Space


class LengthProxy(Proxy):
    """Scores an architecture by a deterministic function of its string; counts calls."""

    name = "length"

    def __init__(self) -> None:
        self.calls = 0

    def compute(self, ctx: ScoringContext) -> float:
        self.calls += 1
        return float(len(ctx.space.to_string(ctx.spec)) + ctx.seed)


class FailingProxy(LengthProxy):
    """Raises for architectures whose first op is 'none' (deterministic), OOM for 'skip_connect'."""

    name = "picky"

    def compute(self, ctx: ScoringContext) -> float:
        self.calls += 1
        if ctx.spec.ops[0] == "none":
            raise ValueError("cannot score an empty first edge")
        if ctx.spec.ops[0] == "skip_connect":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return 1.0


BATCH = (torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long))  # never read: the fakes build no network


@pytest.fixture
def space():
    return NB201Space()


@pytest.fixture
def specs(space):
    rng = np.random.default_rng(0)
    return [space.sample(rng) for _ in range(12)]


def score(space, specs, proxies, store=None, seed=0):
    return ev.score_architectures(space, specs, proxies, BATCH, data_fingerprint="fp", seed=seed, store=store)


def test_store_reuses_scores_across_calls_and_processes(tmp_path, space, specs):
    proxy = LengthProxy()
    first = score(space, specs, [proxy], ev.EvaluationStore(tmp_path / "s.sqlite"))
    again = score(space, specs, [proxy], ev.EvaluationStore(tmp_path / "s.sqlite"))  # a new store object = a new process
    assert proxy.calls == len({space.arch_id(s) for s in specs})
    assert not any(r.cached for r in first) and all(r.cached for r in again)
    assert [r.value for r in first] == [r.value for r in again]


def test_cache_key_includes_seed_data_and_version(tmp_path, space, specs):
    store, proxy = ev.EvaluationStore(tmp_path / "s.sqlite"), LengthProxy()
    score(space, specs[:3], [proxy], store)
    score(space, specs[:3], [proxy], store, seed=1)
    ev.score_architectures(space, specs[:3], [proxy], BATCH, data_fingerprint="other", seed=0, store=store)
    proxy.version = "2"
    score(space, specs[:3], [proxy], store)
    assert proxy.calls == 12 and store.count() == 12


def test_failures_are_rows_and_the_batch_goes_on(tmp_path, space):
    specs = [
        space.from_string(t)
        for t in (
            "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
            "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|",
            "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        )
    ]
    store = ev.EvaluationStore(tmp_path / "s.sqlite")
    rows = score(space, specs, [FailingProxy(), LengthProxy()], store)
    picky = [r for r in rows if r.proxy == "picky"]
    assert [r.state for r in picky] == ["failed", "failed", "ok"]
    assert picky[0].error == "ValueError: cannot score an empty first edge"
    assert picky[1].error == "out of memory: CUDA out of memory. Tried to allocate 2 GiB"
    assert [r.value for r in picky] == [None, None, 1.0]  # a failed score stores no value (NaN stays in the ProxyResult)
    assert all(r.state == "ok" for r in rows if r.proxy == "length")
    again = FailingProxy()
    score(space, specs, [again], store)
    assert again.calls == 0  # a deterministic failure is recorded, never paid again


def test_transient_errors_propagate(space, specs):
    class Flaky(LengthProxy):
        def score(self, *args):  # a fault outside the proxy's computation: no failed result, an exception
            raise ConnectionError("reset by peer")

    with pytest.raises(ConnectionError):
        score(space, specs[:1], [Flaky()])


def test_a_crash_keeps_every_architecture_scored_before_it(tmp_path, space, specs, monkeypatch):
    real, calls = ev.score_one, []

    def crash_on_the_fourth(*args, **kwargs):  # the fault comes from outside, as a killed worker's would
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("injected fault")
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "score_one", crash_on_the_fourth)
    store, proxies = ev.EvaluationStore(tmp_path / "s.sqlite"), [LengthProxy(), FailingProxy()]
    with pytest.raises(RuntimeError, match="injected fault"):
        score(space, specs, proxies, store)
    assert store.count() == 3 * 2
    rows = score(space, specs, proxies, store)
    unique = len({space.arch_id(s) for s in specs})
    assert sum(not r.cached for r in rows) == 2 * unique - 6 and sum(r.cached for r in rows) == 6


def test_the_flow_side_split_sends_only_missing_work_and_reassembles_in_order(tmp_path, space, specs):
    store, length, picky = ev.EvaluationStore(tmp_path / "s.sqlite"), LengthProxy(), FailingProxy()
    archs = [space.to_string(s) for s in specs]
    score(space, specs[:4], [length], store)  # an earlier run knew one proxy of four architectures
    known, work = ev.split_cached(store, space, archs + archs[:2], [length, picky], data_fingerprint="fp", seed=0)
    assert len(known) == 4 and [a for a, _ in work] == list(dict.fromkeys(archs))
    assert [names for _, names in work[:4]] == [["picky"]] * 4 and all(names == ["length", "picky"] for _, names in work[4:])
    fresh = ev.score_work(space, work, [length, picky], BATCH, data_fingerprint="fp", seed=0)  # no store: a remote worker
    assert store.put_many(fresh) == len(fresh) and store.put_many(fresh) == 0
    rows = ev.assemble(space, archs, [length, picky], [*known.values(), *fresh])
    assert [(r.arch, r.proxy) for r in rows] == [(a, p) for a in dict.fromkeys(archs) for p in ("length", "picky")]
    assert [r.cached for r in rows[:8:2]] == [True] * 4 and not any(r.cached for r in rows[1::2])
    assert store.select("fp", 0, [("length", "1")]) and all(r.proxy == "length" for r in store.select("fp", 0, [("length", "1")]))


def _write_keys(path: str, start, barrier, rounds: int) -> None:
    """One writer process: the same 200 keys as the other writer, in 20 small transactions."""
    store = ev.EvaluationStore(path)
    barrier.wait()
    for chunk in range(rounds):
        records = [
            ev.EvalRecord(f"a{i}", f"arch{i}", "p", "1", "fp", 0, float(i), "ok", None, 0.0, f"writer-{start}")
            for i in range(chunk * 10, chunk * 10 + 10)
        ]
        store.put_many(records)


def test_two_processes_writing_the_same_keys_lose_and_duplicate_nothing(tmp_path):
    import multiprocessing
    import sqlite3

    path = str(tmp_path / "shared.sqlite")
    ev.EvaluationStore(path)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    writers = [ctx.Process(target=_write_keys, args=(path, n, barrier, 20)) for n in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
    assert [w.exitcode for w in writers] == [0, 0]  # no "database is locked"
    con = sqlite3.connect(path)
    rows = con.execute("SELECT arch_id, COUNT(*) FROM evals GROUP BY arch_id, data_fingerprint, proxy, proxy_version, seed").fetchall()
    con.close()
    assert len(rows) == 200 and {n for _, n in rows} == {1}
    assert {r.arch_id for r in ev.EvaluationStore(path).select("fp", 0, [("p", "1")])} == {f"a{i}" for i in range(200)}


def test_fitness_marks_failures_nan_and_flips_lower_is_better():
    rec = lambda a, v, s="ok": ev.EvalRecord(a, a, "p", "1", "fp", 0, v, s, None, 0.0, "cpu")  # noqa: E731
    fit = ev.fitness_of([rec("a", 2.0), rec("b", None, "failed")], "p", higher_is_better=False)
    assert fit["a"] == -2.0 and math.isnan(fit["b"])


def test_split_batches():
    assert ev.split_batches(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError):
        ev.split_batches([1], 0)
