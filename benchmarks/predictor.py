"""Held-out Spearman rho of the learned predictor against the number of training rows.

For each table and each random split (seed s), the rows are shuffled; the first n train the
predictor (n in --n, nested: the 20 rows include the 10) and the rows left after the largest n
are the held-out set, the same for every n and every method of that split, so all comparisons
are paired. The predictor learns the table's validation accuracy (what a run measures) and is
judged on --truth (test accuracy where the table has it, else validation accuracy, with a note).

Methods: the predictor on feature sets ``enc`` (code + summary), ``enc+pf`` (+ params and
flops), ``enc+pf+c<k>`` (+ the first k epochs of the curve, for every query too), and baselines
that need no training rows: ``params``, ``flops``, ``curve<k>`` (the accuracy after epoch k alone).
The ceiling is the seed-noise rho: the table against a retraining of its architectures under
another seed (--reseed).

    .venv/bin/python benchmarks/predictor.py --table data/tables/hybrid_mnist14.csv \
        --reseed data/tables/hybrid_mnist14_seed1.csv --splits 20 --out predictor.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import sklearn.ensemble  # noqa: F401  (imported before any refit is timed)
import sklearn.linear_model  # noqa: F401
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_lib.predictor import LearnedPredictor, Observation, PredictorConfig  # noqa: E402
from nas_lib.predictor.table import TableRows, read_table  # noqa: E402

MIN_HELD_OUT = 10  # held-out rows per split at least (half a table of under 20); larger n are skipped


@dataclass(frozen=True)
class Method:
    """A predictor configuration reading `epochs` curve entries (config None: a baseline)."""

    name: str
    config: PredictorConfig | None
    epochs: int = 0
    baseline: str = ""  # "params", "flops" or "curve" (its value at `epochs`)


def methods(table_epochs: int, models: list[str], curve_epochs: list[int]) -> list[Method]:
    """The feature sets and baselines of the brief; curve sets only for k below the table's
    epochs (the curve's last entry is the target itself)."""
    out = []
    ks = [k for k in curve_epochs if k < table_epochs]
    for model in models:
        main = model == models[0]  # the other models only add the comparison rows enc+pf and the longest curve
        tag = "" if main else f"[{model}]"
        pf = PredictorConfig(model=model, proxies=("params", "flops"))
        out += [Method(f"enc{tag}", PredictorConfig(model=model, proxies=()))] if main else []
        out += [Method(f"enc+pf{tag}", pf)]
        out += [Method(f"enc+pf+c{k}{tag}", pf, k) for k in (ks if main else ks[-1:])]
        out += [Method(f"enc+pf+c{k}/abs", replace(pf, residual=False), k) for k in ks] if main else []  # the target itself, not the gain
    out += [Method("params", None, baseline="params"), Method("flops", None, baseline="flops")]
    out += [Method(f"curve{k}", None, k, baseline="curve") for k in curve_epochs if k < table_epochs]
    return out


def cut(row: Observation, epochs: int) -> Observation:
    """What a query knows: the first `epochs` entries of its curve and no target."""
    return replace(row, curve=tuple(row.curve[:epochs]), target=None)


def baseline_scores(rows: list[Observation], method: Method) -> np.ndarray:
    if method.baseline == "curve":
        return np.array([r.curve[method.epochs - 1] if len(r.curve) >= method.epochs else math.nan for r in rows])
    return np.array([r.proxies.get(method.baseline, math.nan) for r in rows])


def spearman(score: np.ndarray, truth: np.ndarray) -> float:
    ok = np.isfinite(score) & np.isfinite(truth)
    if ok.sum() < 3 or np.ptp(score[ok]) == 0:
        return 0.0  # a constant score ranks nothing
    return float(stats.spearmanr(score[ok], truth[ok])[0])


def run_table(table: TableRows, ns: list[int], splits: int, models: list[str], curve_epochs: list[int]) -> dict:
    """rho[method][n] = list over splits, plus what the run cost."""
    total = len(table.rows)
    held_out = min(MIN_HELD_OUT, total // 2)
    ns = [n for n in ns if n <= total - held_out] or [total - held_out]  # a young table: whatever it holds
    if ns[0] < 5:
        raise SystemExit(f"{total} usable rows: too few to split")
    epochs = min(len(r.curve) for r in table.rows)
    chosen = methods(epochs, models, curve_epochs)
    rho: dict[str, dict[int, list[float]]] = {m.name: {n: [] for n in ns} for m in chosen}
    seconds = {m.name: 0.0 for m in chosen}  # fitting + predicting, per method, all n and splits
    for split in range(splits):
        order = np.random.default_rng(split).permutation(total)
        held = [table.rows[i] for i in order[max(ns) :]]
        truth = np.array([table.truth[i] for i in order[max(ns) :]])
        for m in chosen:
            for n in ns:
                if m.config is None:
                    rho[m.name][n].append(spearman(baseline_scores(held, m), truth))
                    continue
                start = time.perf_counter()
                predictor = LearnedPredictor(table.space, replace(m.config, seed=split)).fit([table.rows[i] for i in order[:n]])
                score = predictor.score([cut(r, m.epochs) for r in held])
                seconds[m.name] += time.perf_counter() - start
                rho[m.name][n].append(spearman(score, truth))
    refit = {name: s / (len(ns) * splits) for name, s in seconds.items() if s}
    return {"rows": total, "epochs": epochs, "held_out": total - max(ns), "ns": ns, "rho": rho, "refit_seconds": refit, "note": table.note}


def summary(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else math.nan


def cell(values: list[float]) -> str:
    mean, se = summary(values)
    return f"{mean:.3f} ± {se:.3f}"


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean of a - b, its 95% CI (t) and the minimum detectable difference (80% power, 5%)."""
    d = np.asarray(a) - np.asarray(b)
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    t = float(stats.t.ppf(0.975, len(d) - 1))
    return {"diff": float(d.mean()), "lo": float(d.mean() - t * se), "hi": float(d.mean() + t * se), "mdd": float((t + stats.norm.ppf(0.8)) * se)}


def ceiling(table: Path, reseed: Path, column: str) -> dict[str, float]:
    """Spearman of `column` between a table and its reseeded retraining (shared arch_ids)."""
    import pandas as pd

    from nas_lib.bench.train import read_rows

    a, b = (pd.DataFrame(read_rows(p)) for p in (table, reseed))  # tolerates a table still being written
    column = column if column in a.columns and column in b.columns else "val_accuracy"
    both = a[a.state == "ok"].merge(b[b.state == "ok"], on="arch_id", suffixes=("", "_seed"))
    x, y = pd.to_numeric(both[column]), pd.to_numeric(both[f"{column}_seed"])
    return {"column": column, "rows": len(both), "rho": float(stats.spearmanr(x, y)[0])}


def report(name: str, result: dict) -> str:
    lines = [f"\n{name}: {result['rows']} rows, {result['epochs']} epochs, {result['held_out']} held out per split; {result['note']}".rstrip("; ")]
    ns = result["ns"]
    lines.append(f"{'method':<20}" + "".join(f"{'n=' + str(n):>16}" for n in ns) + "   s/refit (wall, mean over n)")
    for method, by_n in result["rho"].items():
        cells = "".join(f"{cell(by_n[n]):>16}" for n in ns)
        refit = result["refit_seconds"].get(method)
        lines.append(f"{method:<20}{cells}" + (f"   {refit:.2f}" if refit else ""))
    for a, b in comparisons(result["rho"]):
        for n in ns:
            p = paired(result["rho"][a][n], result["rho"][b][n])
            lines.append(f"  {a} - {b} at n={n}: {p['diff']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}], mdd {p['mdd']:.3f}")
    return "\n".join(lines)


def comparisons(rho: dict) -> list[tuple[str, str]]:
    """Each predictor feature set against the baseline it must beat."""
    pairs = [("enc+pf", "params"), ("enc+pf", "enc")]
    pairs += [(m, f"curve{m.split('+c')[1]}") for m in rho if "+c" in m and "[" not in m and "/" not in m]
    pairs += [(m, f"{m}/abs") for m in rho if "+c" in m and "[" not in m and "/" not in m]
    return [(a, b) for a, b in pairs if a in rho and b in rho]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, action="append", required=True)
    parser.add_argument("--reseed", type=Path, action="append", default=[], help="TABLE=RESEEDED or a reseed of the first --table")
    parser.add_argument(
        "--rows", type=int, default=None, help="only each table's first N trained sample rows (a figure taken at that size reproduces)"
    )
    parser.add_argument("--n", default="10,20,40,80,150")
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--models", default="forest", help="comma list; the first is the main one, the others add tagged rows")
    parser.add_argument("--curve-epochs", default="1,2,3")
    parser.add_argument("--truth", default="test_accuracy")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    ns = [int(v) for v in args.n.split(",")]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    curve_epochs = [int(v) for v in args.curve_epochs.split(",") if v]
    results = {}
    for path in args.table:
        start = time.perf_counter()
        table = read_table(path, truth=args.truth)
        if args.rows is not None:
            table = replace(table, rows=table.rows[: args.rows], arch_ids=table.arch_ids[: args.rows], truth=table.truth[: args.rows])
        result = run_table(table, ns, args.splits, models, curve_epochs)
        result["seconds"] = time.perf_counter() - start
        results[str(path)] = result
        print(report(path.name, result) + f"\n  ({result['seconds']:.0f} s)", flush=True)
    for pair in args.reseed:
        table, _, reseed = pair.partition("=") if "=" in str(pair) else (str(args.table[0]), "", str(pair))
        floor = ceiling(Path(table), Path(reseed), args.truth)
        results[f"ceiling {Path(table).name}"] = floor
        print(f"\nceiling (seed noise) {Path(table).name} vs {Path(reseed).name}: rho {floor['rho']:.3f} on {floor['rows']} rows ({floor['column']})")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
