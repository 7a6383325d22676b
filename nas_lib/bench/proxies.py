"""Benchmark training-free proxies: fidelity to a tabular benchmark, agreement with a reference
implementation's scores, cost per architecture, and failures on random hybrid architectures.

Scores are kept in long form (one row per architecture and proxy) and can be checkpointed to
Parquet, so a long run can stop and resume, and the ensemble can be refitted from its rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from scipy import stats

from nas_lib.artifacts import read_table, write_table
from nas_lib.proxies import PROXIES, score_proxies
from nas_lib.proxies.ensemble import Ensemble, combine, rank_aggregate
from nas_lib.space.base import SearchSpace

SCORE_SCHEMA = pa.schema(
    [
        ("arch", pa.string()),
        ("arch_id", pa.string()),
        ("proxy", pa.string()),
        ("version", pa.string()),
        ("value", pa.float64()),
        ("seconds", pa.float64()),
        ("state", pa.string()),
        ("error", pa.string()),
        ("seed", pa.int64()),
    ]
)
TOP_FRACTION = 0.10
Progress = Callable[[str], None]


def load_metric_table(path: str | Path, metric: str, arch_column: str = "arch") -> pd.Series:
    """A CSV or Parquet table as a Series arch string -> metric (missing metrics dropped)."""
    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    for column in (arch_column, metric):
        if column not in frame.columns:
            raise KeyError(f"{path.name}: no column {column!r}; columns: {list(frame.columns)}")
    frame = frame[[arch_column, metric]].dropna().drop_duplicates(arch_column)
    return pd.Series(frame[metric].astype(float).to_numpy(), index=frame[arch_column].astype(str), name=metric)


def resolve_proxies(text: str) -> list[str]:
    """``"all"`` or a comma-separated list -> registered names (KeyError on an unknown one)."""
    if text.strip() == "all":
        return PROXIES.names()
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        PROXIES.get(n)
    return names


def shard(items: Sequence[Any], spec: str | None) -> list[Any]:
    """Items ``i, i+n, i+2n, ...`` for ``spec = "i/n"`` (all of them for None), so n processes
    can score one sample side by side.

    Raises:
        ValueError: if `spec` is not ``i/n`` with 0 <= i < n.
    """
    if spec is None:
        return list(items)
    try:
        i, n = (int(part) for part in spec.split("/"))
    except ValueError:
        raise ValueError(f"a shard is 'i/n' (e.g. 0/2), not {spec!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"shard {spec!r}: need 0 <= i < n")
    return list(items)[i::n]


def sample_archs(archs: Sequence[str], n: int, seed: int) -> list[str]:
    """`n` architectures drawn uniformly without replacement (all of them if n >= len)."""
    if n >= len(archs):
        return list(archs)
    idx = np.random.default_rng(seed).choice(len(archs), size=n, replace=False)
    return [archs[i] for i in idx]


def score_specs(
    space: SearchSpace,
    specs: Sequence[Any],
    names: Sequence[str],
    batch: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    device: str = "cpu",
    checkpoint: Path | None = None,
    every: int = 10,
    progress: Progress | None = None,
    max_seconds: float | None = None,
    merge: Sequence[Path] = (),
    build_workers: int = 0,
) -> pd.DataFrame:
    """Scores every spec with every proxy (passes shared per network), in long form.

    The ensemble, if asked for, is computed from its members' scores with no extra pass.
    With `checkpoint`, rows already there (same arch, proxy, version, seed) are reused and the
    file is rewritten every `every` architectures; rows of an older proxy version stay in the
    file but never enter the returned frame. With `max_seconds`, no new architecture is
    scored once that much time has passed: the frame then holds only the architectures scored
    (checkpointed ones included), and its distinct `arch` count is the n to report.
    `merge` names further checkpoints (e.g. of shards scored by other processes) whose rows are
    read, never written; the `checkpoint` file's own rows win where both have one.
    With `build_workers` > 0, that many processes build the coming networks while this one
    scores (`prefetch.prebuilt_networks`); the scores are the same, and a row's `seconds` then
    leaves out the construction that overlapped.
    """
    derived = [n for n in names if is_derived(n)]
    direct = [n for n in names if n not in derived]
    members = sorted(set().union(*(PROXIES.get(n).requires for n in derived)))
    to_score = list(dict.fromkeys(direct + members))
    done: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in merge:
        if not Path(path).exists():
            raise FileNotFoundError(f"checkpoint to merge not found: {path}")
        done.update(_load_checkpoint(path, seed))
    done.update(_load_checkpoint(checkpoint, seed))
    rows: list[dict[str, Any]] = list(done.values())
    built = _prefetch(space, specs, to_score, done, batch, seed, build_workers)
    start = time.perf_counter()
    for k, spec in enumerate(specs, start=1):
        arch = space.to_string(spec)
        missing = [n for n in to_score if (arch, n, PROXIES.get(n).version) not in done]
        if missing and max_seconds is not None and time.perf_counter() - start > max_seconds:
            continue
        if missing:
            model = None
            if built is not None:
                ahead, model = next(built)
                if ahead is not spec:
                    raise RuntimeError("prefetched networks out of step with the specs")
            for name, res in score_proxies(space, spec, missing, batch, seed, device, model=model).items():
                row = _row(space, spec, arch, name, res.value, res.seconds, res.state, res.error, seed)
                done[(arch, name, row["version"])] = row
                rows.append(row)
        if progress and (k % every == 0 or k == len(specs)):
            progress(f"  scored {k}/{len(specs)} architectures ({time.perf_counter() - start:.0f} s)")
        if checkpoint is not None and (k % every == 0 or k == len(specs)):
            write_table(checkpoint, rows, SCORE_SCHEMA)
    if built is not None:
        built.close()  # stops the builders (some may have built ahead of a --max-seconds stop)
    frame = pd.DataFrame(rows, columns=SCORE_SCHEMA.names)
    current = frame["version"] == frame["proxy"].map(lambda n: PROXIES.get(n).version if n in PROXIES else None)
    frame = frame[current & frame["arch"].isin({space.to_string(s) for s in specs})]
    if "ensemble" in names:
        frame = add_ensemble_rows(frame, space, seed)
    for name in derived:
        if PROXIES.get(name).population:
            frame = add_rank_rows(frame, name, seed)
    return frame[frame["proxy"].isin(set(names))].reset_index(drop=True)


def _prefetch(
    space: SearchSpace, specs: Sequence[Any], to_score: Sequence[str], done: dict, batch: tuple[torch.Tensor, torch.Tensor], seed: int, workers: int
) -> Generator[tuple[Any, Any], None, None] | None:
    """Networks built ahead for the specs `score_specs` will score (first occurrence of each
    architecture with a missing row), or None without workers."""
    if workers <= 0:
        return None
    from nas_lib.bench.prefetch import prebuilt_networks

    seen: set[str] = set()
    todo = []
    for spec in specs:
        arch = space.to_string(spec)
        if arch not in seen and any((arch, n, PROXIES.get(n).version) not in done for n in to_score):
            todo.append(spec)
        seen.add(arch)
    return prebuilt_networks(space, todo, batch, seed, workers)


def is_derived(name: str) -> bool:
    """True for a proxy computed from its members' rows (no pass of its own)."""
    return name == "ensemble" or bool(PROXIES.get(name).population)


def add_rank_rows(frame: pd.DataFrame, name: str, seed: int) -> pd.DataFrame:
    """Adds (or replaces) the rows of population proxy `name`: the fit-free rank aggregation
    (`rank_aggregate`) of its members over every architecture in `frame` that has them all.

    An architecture missing a member row is left out; a failed member ranks it last for that
    member (as AZ-NAS ranks -inf scores), so the aggregate itself never fails.
    """
    cls = PROXIES.get(name)
    members = sorted(cls.requires)
    frame = frame[frame["proxy"] != name]
    sub = frame[frame["proxy"].isin(members)]
    wide = sub.pivot_table(index="arch", columns="proxy", values="value", aggfunc="first", dropna=False)
    count = sub.groupby("arch")["proxy"].nunique()
    archs = [a for a in wide.index if count.get(a, 0) == len(members)]
    if not archs:
        return frame
    scores = rank_aggregate({m: wide.loc[archs, m].to_numpy(dtype=float) for m in members})
    secs = sub.pivot_table(index="arch", columns="proxy", values="seconds", aggfunc="first").loc[archs]
    ids = frame.drop_duplicates("arch").set_index("arch")["arch_id"]
    rows = [
        {
            "arch": a,
            "arch_id": ids[a],
            "proxy": name,
            "version": cls.version,
            "value": float(v),
            "seconds": float(np.nanmax(secs.loc[a].to_numpy())),
            "state": "ok",
            "error": None,
            "seed": seed,
        }
        for a, v in zip(archs, scores)
    ]
    return pd.concat([frame, pd.DataFrame(rows, columns=SCORE_SCHEMA.names)], ignore_index=True)


def proxy_search(frame: pd.DataFrame, truth: pd.Series, names: Sequence[str], budget: int = 100, seeds: int = 10) -> dict[str, dict[str, Any]]:
    """Training-free search from scored rows: per seed, draw `budget` of the scored
    architectures, rank them by the proxy (a population proxy re-aggregates its members over
    those `budget` only) and return the true metric of the top one.

    Returns:
        per proxy: ``mean``, ``std`` and ``answers`` (true metric of each seed's pick).
    """
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        cls = PROXIES.get(name)
        cols = sorted(cls.requires) if cls.population else [name]
        wide = pd.DataFrame({c: _raw(frame, c) if cls.population else oriented(frame, c) for c in cols}).dropna()
        pool = wide.index.intersection(truth.index)
        if len(pool) < budget:
            continue
        answers = []
        for seed in range(seeds):
            pick = pool[np.random.default_rng(seed).choice(len(pool), size=budget, replace=False)]
            part = wide.loc[pick]
            score = rank_aggregate({c: part[c].to_numpy() for c in cols}) if cls.population else part[name].to_numpy()
            answers.append(float(truth[pick[int(np.argmax(score))]]))
        out[name] = {
            "mean": _round(float(np.mean(answers))),
            "std": _round(float(np.std(answers))),
            "answers": answers,
            "budget": budget,
            "seeds": seeds,
        }
    return out


def _load_checkpoint(path: Path | None, seed: int) -> dict[tuple[str, str, str], dict[str, Any]]:
    if path is None or not Path(path).exists():
        return {}
    frame = read_table(path)
    frame = frame[frame["seed"] == seed]
    frame = frame.astype(object).where(frame.notna(), None)
    return {(r["arch"], r["proxy"], r["version"]): r for r in frame.to_dict("records")}


def _row(
    space: SearchSpace, spec: Any, arch: str, name: str, value: float, seconds: float, state: str, error: str | None, seed: int
) -> dict[str, Any]:
    return {
        "arch": arch,
        "arch_id": space.arch_id(spec),
        "proxy": name,
        "version": PROXIES.get(name).version,
        "value": value,
        "seconds": seconds,
        "state": state,
        "error": error,
        "seed": seed,
    }


def add_ensemble_rows(
    frame: pd.DataFrame, space: SearchSpace, seed: int, weights: dict[str, float] | None = None, quantiles: dict[str, list[float]] | None = None
) -> pd.DataFrame:
    """Adds (or replaces) ensemble rows computed from the member rows of each architecture."""
    frame = frame[frame["proxy"] != "ensemble"]
    members = sorted(weights or Ensemble.requires)
    wide = frame.pivot_table(index="arch", columns="proxy", values="value", aggfunc="first")
    secs = frame.pivot_table(index="arch", columns="proxy", values="seconds", aggfunc="first")
    ids = frame.drop_duplicates("arch").set_index("arch")["arch_id"]
    rows = []
    for arch in wide.index:
        vals = {m: wide.at[arch, m] if m in wide.columns else math.nan for m in members}
        ok = all(np.isfinite(v) for v in vals.values())
        value = combine(vals, weights, quantiles) if ok else math.nan
        seconds = float(np.nansum([secs.at[arch, m] for m in members if m in secs.columns]))
        rows.append(
            {
                "arch": arch,
                "arch_id": ids[arch],
                "proxy": "ensemble",
                "version": Ensemble.version,
                "value": value,
                "seconds": seconds,
                "state": "ok" if ok else "failed",
                "error": None if ok else "a member proxy failed",
                "seed": seed,
            }
        )
    return pd.concat([frame, pd.DataFrame(rows, columns=SCORE_SCHEMA.names)], ignore_index=True)


def _raw(frame: pd.DataFrame, name: str) -> pd.Series:
    """arch -> raw score of `name`, -inf where it failed (NaN where it was not scored)."""
    sub = frame[frame["proxy"] == name].drop_duplicates("arch").set_index("arch")
    values = sub["value"].astype(float)
    return values.where(sub["state"] == "ok", -np.inf)


def oriented(frame: pd.DataFrame, name: str) -> pd.Series:
    """arch -> score of proxy `name`, negated when lower is better; failures become -inf
    (ranked last, as a search would treat them)."""
    sub = frame[frame["proxy"] == name].drop_duplicates("arch").set_index("arch")
    sign = 1.0 if PROXIES.get(name).higher_is_better else -1.0
    values = sub["value"].astype(float) * sign
    return values.where((sub["state"] == "ok") & np.isfinite(values), -np.inf)


def fidelity(frame: pd.DataFrame, truth: pd.Series, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per proxy: Spearman and Kendall with the true metric, recall of the true top 10%,
    median seconds per architecture, failures, n."""
    out: dict[str, dict[str, float]] = {}
    for name in names:
        score = oriented(frame, name)
        common = score.index.intersection(truth.index)
        if len(common) < 3:
            continue
        s, t = score[common].to_numpy(), truth[common].to_numpy()
        sub = frame[(frame["proxy"] == name) & frame["arch"].isin(common)]
        out[name] = {
            "spearman": _round(stats.spearmanr(s, t).statistic),
            "kendall": _round(stats.kendalltau(s, t).statistic),
            "top10pct_recall": _round(top_recall(s, t)),
            "median_s_per_arch": _round(float(sub["seconds"].median()), 4),
            "failed": int((sub["state"] != "ok").sum()),
            "n": int(len(common)),
        }
    return out


def top_recall(score: np.ndarray, truth: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Share of the true top `fraction` that is also in the proxy's top `fraction`."""
    k = max(1, math.ceil(fraction * len(truth)))
    best = set(np.argsort(-truth, kind="stable")[:k])
    picked = set(np.argsort(-score, kind="stable")[:k])
    return len(best & picked) / k


def agreement(frame: pd.DataFrame, reference: pd.DataFrame, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per proxy that the reference also has: Spearman between our score and its score."""
    ref = reference.drop_duplicates("arch").set_index("arch")
    out: dict[str, dict[str, float]] = {}
    for name in names:
        if name not in ref.columns:
            continue
        sub = frame[(frame["proxy"] == name) & (frame["state"] == "ok")].drop_duplicates("arch").set_index("arch")
        common = sub.index.intersection(ref.index)
        theirs = ref.loc[common, name].astype(float)
        mask = np.isfinite(theirs.to_numpy())
        if mask.sum() < 3:
            continue
        rho = stats.spearmanr(sub.loc[common, "value"].to_numpy()[mask], theirs.to_numpy()[mask]).statistic
        out[name] = {"spearman": _round(rho), "n": int(mask.sum())}
    return out


def failures(frame: pd.DataFrame, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per proxy: failures, median seconds, and up to three distinct error messages."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        sub = frame[frame["proxy"] == name]
        errors = sorted({e for e in sub["error"].dropna()})[:3]
        out[name] = {
            "failed": int((sub["state"] != "ok").sum()),
            "n": int(len(sub)),
            "median_s_per_arch": _round(float(sub["seconds"].median()), 4),
            "errors": errors,
        }
    return out


def format_results(result: dict[str, Any]) -> str:
    """A readable table of a benchmark result."""
    lines = [f"space {result['space']}  n={result['n']}  metric={result.get('metric')}"]
    head = f"{'proxy':<10} {'spearman':>9} {'kendall':>8} {'top10%':>7} {'s/arch':>8} {'failed':>6} {'vs ref':>7}"
    lines.append(head)
    ref = result.get("reference", {})
    for name, row in result["proxies"].items():
        r = ref.get(name, {}).get("spearman")
        lines.append(
            f"{name:<10} {_fmt(row.get('spearman')):>9} {_fmt(row.get('kendall')):>8} "
            f"{_fmt(row.get('top10pct_recall')):>7} {_fmt(row.get('median_s_per_arch'), 3):>8} "
            f"{row.get('failed', 0):>6} {_fmt(r):>7}"
        )
    fitted = result.get("fitted_ensemble")
    if fitted:
        lines.append(
            f"ensemble fitted on {fitted['n_fit']} architectures, held-out spearman {_fmt(fitted['holdout_spearman'])} "
            f"on {fitted['n_holdout']} (weights {fitted['weights']})"
        )
    return "\n".join(lines)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _round(x: float, digits: int = 4) -> float:
    return float(round(float(x), digits)) if x is not None and np.isfinite(x) else float("nan")


def sample_hybrid(space: SearchSpace, n: int, seed: int) -> list[Any]:
    """`n` random hybrid architectures, the depth drawn uniformly first (uniform samples of the
    full space are almost all of the maximum depth)."""
    rng = np.random.default_rng(seed)
    depths = list(space.depths())  # type: ignore[attr-defined]
    return [space.sample(rng, depth=int(rng.choice(depths))) for _ in range(n)]  # type: ignore[call-arg]


def fit_ensemble(
    frame: pd.DataFrame,
    truth: pd.Series,
    members: Sequence[str],
    seed: int = 0,
    fit_fraction: float = 0.5,
    trials: int = 3000,
    n_quantiles: int = 101,
) -> dict[str, Any]:
    """Fits ensemble weights on a split of the scored cells and reports the held-out Spearman.

    Member scores are oriented (higher is better), mapped to percentiles of their distribution
    on the fitting half, and the weights (on the simplex) are the best of `trials` Dirichlet
    draws plus every single member and the uniform mix, by Spearman with `truth` on the
    fitting half. Cells where a member failed are left out.

    Returns:
        ``weights``, ``quantiles`` (per member, oriented), ``fit_spearman``,
        ``holdout_spearman``, ``n_fit``, ``n_holdout``.
    """
    wide = pd.DataFrame({m: oriented(frame, m) for m in members}).dropna()
    wide = wide[np.isfinite(wide.to_numpy()).all(axis=1)]
    wide = wide.loc[wide.index.intersection(truth.index)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(wide))
    cut = int(round(fit_fraction * len(wide)))
    fit, hold = wide.iloc[order[:cut]], wide.iloc[order[cut:]]
    quantiles = {m: [float(v) for v in np.quantile(fit[m], np.linspace(0, 1, n_quantiles))] for m in members}

    def percentiles(part: pd.DataFrame) -> np.ndarray:  # the same mapping as ensemble.percentile
        grid = np.linspace(0, 1, n_quantiles)
        cols = [np.interp(np.clip(part[m], quantiles[m][0], quantiles[m][-1]), quantiles[m], grid) for m in members]
        return np.stack(cols, axis=1)

    p_fit, t_fit = percentiles(fit), truth[fit.index].to_numpy()
    candidates = [np.eye(len(members))[k] for k in range(len(members))] + [np.full(len(members), 1 / len(members))]
    candidates += list(rng.dirichlet(np.ones(len(members)), size=trials))
    best = max(candidates, key=lambda w: stats.spearmanr(p_fit @ w, t_fit).statistic)
    weights = {m: float(round(w, 4)) for m, w in zip(members, best) if w >= 1e-4}
    kept = [members.index(m) for m in weights]
    w_kept = np.array([weights[members[k]] for k in kept])
    hold_score = percentiles(hold)[:, kept] @ w_kept if len(hold) else np.array([])
    return {
        "weights": weights,
        "quantiles": {m: quantiles[m] for m in weights},
        "fit_spearman": _round(stats.spearmanr(p_fit[:, kept] @ w_kept, t_fit).statistic),
        "holdout_spearman": _round(stats.spearmanr(hold_score, truth[hold.index]).statistic) if len(hold) > 2 else float("nan"),
        "n_fit": int(len(fit)),
        "n_holdout": int(len(hold)),
    }
