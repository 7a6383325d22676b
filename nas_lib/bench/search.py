"""Benchmark search strategies on a tabular NAS benchmark (NAS-Bench-201 and the like).

Each strategy searches the cells of the table for `budget` queries, once per seed. It sees either
the table's metric of each queried cell (``fitness="table"``) or only a training-free proxy
score (``fitness="proxy:<name>"``); either way the reported figure is the TRUE table metric of
the cell the strategy returns as its answer (`Strategy.best()`), so proxy-driven searches are
judged by real accuracy. The anytime curve is that figure after every query, averaged over seeds.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas_lib.artifacts import atomic_write_json
from nas_lib.search import STRATEGIES, strategy_class
from nas_lib.space.base import SearchSpace
from nas_lib.space.nb201 import NUM_EDGES, OPS, NB201Space, parse_nb201

Fitness = Callable[[Any], float]


def load_table(path: str | Path, metric: str, arch_column: str = "arch") -> dict[str, float]:
    """Reads a CSV or Parquet table into ``{arch string: metric}`` (rows with a missing metric
    are dropped)."""
    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    for column in (arch_column, metric):
        if column not in frame.columns:
            raise KeyError(f"{path.name}: no column {column!r}; columns: {list(frame.columns)}")
    frame = frame[[arch_column, metric]].dropna()
    return dict(zip(frame[arch_column].astype(str), frame[metric].astype(float)))


def nb201_space_for(archs: Sequence[str]) -> NB201Space:
    """The NB201 space restricted to the operations each edge takes somewhere in `archs` (the
    full space for the complete table; a smaller one for a table of a restricted space)."""
    seen: list[set[str]] = [set() for _ in range(NUM_EDGES)]
    for arch in archs:
        for k, op in enumerate(parse_nb201(arch)):
            seen[k].add(op)
    return NB201Space([[op for op in OPS if op in ops] for ops in seen])


@dataclass
class TableFitness:
    """Fitness = the table's metric of the cell (NaN for a cell the table lacks)."""

    space: SearchSpace
    table: dict[str, float]

    def __call__(self, spec: Any) -> float:
        return self.table.get(self.space.to_string(spec), math.nan)


@dataclass
class ProxyFitness:
    """Fitness = a training-free proxy score from `nas_lib.proxies`, cached per cell.

    The cache lives for the whole benchmark (so 20 seeds never rescore a cell) and, with
    `cache_path`, in a JSON file keyed by proxy, batch seed and cell, reused across runs.
    """

    space: SearchSpace
    proxy: str
    batch: Any = None
    seed: int = 0
    cache_path: Path | None = None
    scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)  # proxy error message -> count
    _dirty: int = 0

    def __post_init__(self) -> None:
        from nas_lib.proxies import get_proxy  # imported here: table benchmarks do not need torch proxies

        self._proxy = get_proxy(self.proxy)
        if self.batch is None:
            self.batch = random_batch(self.seed)
        if self.cache_path is not None and Path(self.cache_path).exists():
            stored = json.loads(Path(self.cache_path).read_text()).get(self._cache_key(), {})
            # failures are stored as JSON null; the strategies must see them as NaN again
            self.scores.update({k: math.nan if v is None else float(v) for k, v in stored.items()})

    def _cache_key(self) -> str:
        return f"{self.space.name}/{self.proxy}/seed{self.seed}"

    def __call__(self, spec: Any) -> float:
        key = self.space.to_string(spec)
        if key not in self.scores:
            result = self._proxy.score(self.space, spec, self.batch, self.seed)
            self.seconds += float(result.seconds)
            value = float(result.value) if result.value is not None else math.nan
            self.scores[key] = value if math.isfinite(value) else math.nan
            if result.error:
                self.errors[result.error] = self.errors.get(result.error, 0) + 1
            self._dirty += 1
            if self._dirty >= 200:
                self.flush()
        return self.scores[key]

    def flush(self) -> None:
        """Writes new scores to the cache file (atomically), if there is one."""
        if self.cache_path is None or not self._dirty:
            return
        path = Path(self.cache_path)
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault(self._cache_key(), {}).update({k: (None if math.isnan(v) else v) for k, v in self.scores.items()})
        atomic_write_json(path, data)
        self._dirty = 0


def random_batch(seed: int, size: int = 16, shape: tuple[int, int, int] = (3, 32, 32), classes: int = 10) -> tuple[Any, Any]:
    """A seeded batch of Gaussian images and labels, for proxies scored without `--images`
    (data-free proxies such as synflow or params only need its shape)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.randn((size, *shape), generator=gen), torch.randint(0, classes, (size,), generator=gen)


@dataclass(frozen=True)
class SearchRun:
    """One strategy, one seed: its answer, judged by the table, and what it cost."""

    strategy: str
    seed: int
    answer: str
    answer_metric: float
    curve: list[float]
    queries: int
    overhead_seconds: float  # ask + tell + best, fitness excluded
    note: str = ""


def run_search(
    name: str,
    space: SearchSpace,
    fitness: Fitness,
    truth: dict[str, float],
    budget: int,
    seed: int,
    batch_size: int = 1,
    options: dict[str, Any] | None = None,
) -> SearchRun:
    """Runs strategy `name` for `budget` queries and judges its answer with `truth`."""
    strategy = strategy_class(name)(space, seed=seed, **(options or {}))
    curve: list[float] = []
    overhead = 0.0
    while len(curve) < budget:
        t0 = time.perf_counter()
        specs = strategy.ask(min(batch_size, budget - len(curve)))
        overhead += time.perf_counter() - t0
        values = [fitness(s) for s in specs]
        t0 = time.perf_counter()
        strategy.tell(specs, values)
        answer = _answer(strategy)
        overhead += time.perf_counter() - t0
        curve.extend([truth.get(answer, math.nan)] * len(specs))
    answer = _answer(strategy)
    note = str(getattr(strategy, "ranker_used", ""))
    return SearchRun(name, seed, answer, truth.get(answer, math.nan), curve, len(curve), overhead, note)


def _answer(strategy: Any) -> str:
    try:
        return strategy.space.to_string(strategy.best()[0])
    except RuntimeError:  # nothing succeeded yet
        return ""


def summarise(runs: Sequence[SearchRun], optimum: float) -> dict[str, Any]:
    """Mean, std and regret of the answers, the mean anytime curve and the overhead."""
    values = np.array([r.answer_metric for r in runs], dtype=float)
    curves = np.array([r.curve for r in runs], dtype=float)
    queries = sum(r.queries for r in runs)
    seconds = sum(r.overhead_seconds for r in runs)
    notes = sorted({r.note for r in runs if r.note})
    return {
        "mean": float(np.nanmean(values)),
        "std": float(np.nanstd(values)),
        "regret": float(optimum - np.nanmean(values)),
        "queries": int(round(queries / max(len(runs), 1))),
        "seconds": seconds / max(len(runs), 1),
        "ms_per_query": 1000.0 * seconds / max(queries, 1),
        "curve": [float(v) for v in np.nanmean(curves, axis=0)],
        "answers": [r.answer_metric for r in runs],
        **({"ranker": ", ".join(notes)} if notes else {}),
    }


def benchmark(
    table: dict[str, float],
    strategies: Sequence[str],
    budget: int,
    seeds: int,
    fitness: Fitness | None = None,
    space: SearchSpace | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    batch_size: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Runs every strategy for seeds 0..seeds-1 and returns the JSON-ready result.

    Args:
        table: ``{arch string: true metric}``; the answers are judged with it.
        strategies: registered strategy names (``["all"]`` for every one).
        budget: queries per run.
        seeds: number of seeds per strategy.
        fitness: what the strategies see (default: the table itself).
        space: the space to search (default: the NB201 space the table covers).
        options: per-strategy constructor options.
        batch_size: candidates asked per round.
        progress: called with one line per finished strategy.
    """
    space = space or nb201_space_for(list(table))
    fitness = fitness or TableFitness(space, table)
    names = STRATEGIES.names() if list(strategies) == ["all"] else list(strategies)
    optimum = max(table.get(space.to_string(s), -math.inf) for s in _cells(space, table))
    result: dict[str, Any] = {"optimum": optimum, "budget": budget, "seeds": seeds, "strategies": {}}
    for name in names:
        runs = [run_search(name, space, fitness, table, budget, seed, batch_size, (options or {}).get(name)) for seed in range(seeds)]
        result["strategies"][name] = summarise(runs, optimum)
        if progress:
            progress(format_row(name, result["strategies"][name]))
    return result


def _cells(space: SearchSpace, table: dict[str, float]) -> list[Any]:
    """The table's cells that lie in `space` (the optimum is taken over these)."""
    cells = []
    for arch in table:
        try:
            spec = space.from_string(arch)
        except ValueError:
            continue
        if space.contains(spec):
            cells.append(spec)
    return cells


def format_row(name: str, s: dict[str, Any]) -> str:
    """One aligned line of the printed table."""
    return f"{name:<12} {s['mean']:8.3f} {s['std']:7.3f} {s['regret']:8.3f} {s['queries']:7d} {s['ms_per_query']:9.2f}"


def format_results(result: dict[str, Any]) -> str:
    """The printed table: one row per strategy, best mean first."""
    head = f"{'strategy':<12} {'mean':>8} {'std':>7} {'regret':>8} {'queries':>7} {'ms/query':>9}"
    rows = sorted(result["strategies"].items(), key=lambda kv: -kv[1]["mean"])
    lines = [head, *(format_row(n, s) for n, s in rows), f"optimum {result['optimum']:.3f}"]
    return "\n".join(lines)


def plot_curves(result: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Saves the mean anytime curves (true metric of the answer vs queries) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, s in sorted(result["strategies"].items()):
        ax.plot(range(1, len(s["curve"]) + 1), s["curve"], label=f"{name} ({s['mean']:.2f})")
    ax.axhline(result["optimum"], color="k", ls="--", lw=0.8, label=f"optimum {result['optimum']:.2f}")
    ax.set_xlabel("queries")
    ax.set_ylabel("true metric of the answer (mean over seeds)")
    lo = min(min(s["curve"][len(s["curve"]) // 10 :] or [result["optimum"]]) for s in result["strategies"].values())
    lo = max(lo, result["optimum"] - 5)  # NB201 percentages: the last 5 points are what differ
    ax.set_ylim(lo, result["optimum"] + max(0.05 * (result["optimum"] - lo), 1e-3))  # headroom in the table's own units
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
