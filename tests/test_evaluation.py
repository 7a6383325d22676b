"""Evaluation store and failure-tolerant batched scoring (fake proxies: no model is built)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from nas_lib import evaluation as ev
from nas_lib.space import NB201Space


@dataclass(frozen=True)
class Result:
    value: float
    seconds: float
    state: str
    error: str | None = None


class LengthProxy:
    """Scores an architecture by a deterministic function of its string; counts calls."""

    name, version, higher_is_better = "length", "1", True

    def __init__(self) -> None:
        self.calls = 0

    def score(self, space, spec, batch, seed, device):
        self.calls += 1
        return Result(float(len(space.to_string(spec)) + seed), 0.0, "ok")


class FailingProxy(LengthProxy):
    """Raises for architectures whose first op is 'none' (deterministic), OOM for 'skip_connect'."""

    name = "picky"

    def score(self, space, spec, batch, seed, device):
        self.calls += 1
        if spec.ops[0] == "none":
            raise ValueError("cannot score an empty first edge")
        if spec.ops[0] == "skip_connect":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return Result(1.0, 0.0, "ok")


@pytest.fixture
def space():
    return NB201Space()


@pytest.fixture
def specs(space):
    rng = np.random.default_rng(0)
    return [space.sample(rng) for _ in range(12)]


def score(space, specs, proxies, store=None, seed=0):
    return ev.score_architectures(space, specs, proxies, None, data_fingerprint="fp", seed=seed, store=store)


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
    ev.score_architectures(space, specs[:3], [proxy], None, data_fingerprint="other", seed=0, store=store)
    proxy.version = "2"
    score(space, specs[:3], [proxy], store)
    assert proxy.calls == 12 and store.count() == 12


def test_failures_are_rows_and_the_batch_goes_on(tmp_path, space):
    specs = [space.from_string(t) for t in (
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    )]
    store = ev.EvaluationStore(tmp_path / "s.sqlite")
    rows = score(space, specs, [FailingProxy(), LengthProxy()], store)
    picky = [r for r in rows if r.proxy == "picky"]
    assert [r.state for r in picky] == ["failed", "failed", "ok"]
    assert picky[0].error.startswith("ValueError") and picky[1].error.startswith("oom")
    assert all(r.state == "ok" for r in rows if r.proxy == "length")
    again = FailingProxy()
    score(space, specs, [again], store)
    assert again.calls == 0  # a deterministic failure is recorded, never paid again


def test_transient_errors_propagate(space, specs):
    class Flaky(LengthProxy):
        def score(self, *args):
            raise ConnectionError("reset by peer")

    with pytest.raises(ConnectionError):
        score(space, specs[:1], [Flaky()])


def test_fault_hook_stops_after_n_fresh_evaluations(tmp_path, space, specs, monkeypatch):
    monkeypatch.setattr(ev, "FAULTS", ev._FaultCounter())
    monkeypatch.setenv(ev.FAULT_ENV, "6")
    store, proxies = ev.EvaluationStore(tmp_path / "s.sqlite"), [LengthProxy(), FailingProxy()]
    with pytest.raises(ev.InjectedFault):
        score(space, specs, proxies, store)
    assert store.count() == 6
    monkeypatch.delenv(ev.FAULT_ENV)
    rows = score(space, specs, proxies, store)
    unique = len({space.arch_id(s) for s in specs})
    assert sum(not r.cached for r in rows) == 2 * unique - 6
    assert ev.FAULTS.fresh == 2 * unique


def test_fitness_marks_failures_nan_and_flips_lower_is_better():
    rec = lambda a, v, s="ok": ev.EvalRecord(a, a, "p", "1", "fp", 0, v, s, None, 0.0, "cpu")  # noqa: E731
    fit = ev.fitness_of([rec("a", 2.0), rec("b", None, "failed")], "p", higher_is_better=False)
    assert fit["a"] == -2.0 and math.isnan(fit["b"])


def test_split_batches():
    assert ev.split_batches(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError):
        ev.split_batches([1], 0)
