"""EHNAS against what a user would pick instead, simulated on a trained table at equal budget.

Every seed draws a pool of the table's sample rows (or takes them all), gives every method the
same pool and the same simulated wall-clock budget (a fraction of what training the whole pool
to full budget costs), and scores each winner by its table test accuracy (see
`nas_lib.bench.simulate`). Printed per budget: mean ± standard error of the winners' score, their
mean percentile in the table, and each method's paired difference from ehnas (ehnas minus method)
with its 95% t interval and the minimum detectable difference at 80% power. Those intervals
hold the table's rows fixed; `--blocks K` splits the rows into K disjoint blocks, runs every
block, and adds the interval over the blocks, which counts the rows as a sample of the space.

    .venv/bin/python benchmarks/compare.py --table data/tables/hybrid_mnist14_e4.csv --budgets 0.1,0.25 \
        --seeds 100 --rungs 1,2,4 --eta 2 --out compare.json
    .venv/bin/python benchmarks/compare.py --list            # the registered methods and their options
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_lib.artifacts import atomic_write_json  # noqa: E402
from nas_lib.bench.paired import mean_se, paired_difference  # noqa: E402
from nas_lib.bench.simulate import METHODS, CurveTable, MethodRun, PoolMapper, load_curve_table, make_method, pool_for, run_method  # noqa: E402
from nas_lib.bench.simulate.methods import options_of  # noqa: E402

HALVING = ("ehnas", "random_sh")  # the methods --rungs/--eta configure


def parse_value(text: str) -> Any:
    """JSON if it parses (lists become tuples), a comma list of ints, else the string."""
    try:
        value = json.loads(text)
        return tuple(value) if isinstance(value, list) else value
    except json.JSONDecodeError:
        return tuple(int(v) for v in text.split(",") if v) if "," in text else text


def parse_methods(args: argparse.Namespace) -> dict[str, tuple[str, dict[str, Any]]]:
    """label -> (registered method, options), from --methods, --variant, --set, --rungs, --eta."""
    names = METHODS.names() if args.methods == "all" else args.methods.split(",")
    chosen: dict[str, tuple[str, dict[str, Any]]] = {n: (n, {}) for n in names}
    for spec in args.variant:  # label=method:key=value;key=value
        label, _, rest = spec.partition("=")
        method, _, opts = rest.partition(":")
        chosen[label] = (method, dict((k, parse_value(v)) for k, v in (kv.split("=", 1) for kv in opts.split(";") if kv)))
    for method, options in chosen.values():
        if method in HALVING:
            if args.eta is not None:
                options.setdefault("eta", args.eta)
            if args.rungs:
                options.setdefault("budgets", parse_value(args.rungs + ","))
    for item in args.set:  # label.key=value
        key, _, value = item.partition("=")
        label, _, field = key.partition(".")
        chosen[label][1][field] = parse_value(value)
    return chosen


def summarise(runs: dict[str, list[MethodRun]], table: CurveTable) -> dict[str, Any]:
    """Per method: mean ± SE of the score and percentile, paired difference ehnas - method."""
    base = {r.seed: r.score for r in runs.get("ehnas", [])}
    out: dict[str, Any] = {}
    for label, rs in runs.items():
        score = mean_se([r.score for r in rs])
        row: dict[str, Any] = {
            "score": score.mean,
            "se": score.se,
            "n": score.n,
            "percentile": float(np.nanmean([r.percentile for r in rs])) if score.n else math.nan,
            "evaluations": float(np.mean([r.evaluations for r in rs])),
            "full_trainings": float(np.mean([r.full_trainings for r in rs])),
            "spent_fraction": float(np.mean([r.spent / r.budget for r in rs])),
            "mean_map_distance": float(np.nanmean([r.mean_distance for r in rs])) if any(r.mapped for r in rs) else None,
            "overhead_s": float(np.mean([r.overhead_seconds for r in rs])),
            "scores": [r.score for r in rs],
        }
        if base and label != "ehnas" and score.n:
            d = paired_difference([base.get(r.seed, math.nan) for r in rs], [r.score for r in rs])
            row["vs_ehnas"] = {
                "mean": d.mean,
                "se": d.se,
                "ci95": [d.low, d.high],
                "mdd80": d.mdd,
                "n": d.n,
                "ehnas_wins": d.wins,
                "ehnas_losses": d.losses,
            }
        out[label] = row
    return out


def across_blocks(per_block: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method, over disjoint blocks of table rows: the mean score and the mean of the blocks'
    paired differences ehnas - method, with a Student-t 95% interval on K - 1 degrees of freedom.
    Unlike the seed-level interval, which holds a block's rows fixed, this one counts the rows as
    a sample of the space: it is what a claim about the space (not about this table) needs."""
    out: dict[str, Any] = {}
    for label in per_block[0]:
        scores = [b[label]["score"] for b in per_block]
        diffs = [b[label]["vs_ehnas"]["mean"] for b in per_block if "vs_ehnas" in b[label]]
        row: dict[str, Any] = {"score": float(np.mean(scores)), "block_scores": scores}
        if diffs:
            d = paired_difference(diffs, [0.0] * len(diffs))
            row["vs_ehnas"] = {"mean": d.mean, "ci95": [d.low, d.high], "mdd80": d.mdd, "blocks": diffs}
        out[label] = row
    return out


def format_across(summary: dict[str, Any], header: str) -> str:
    """The printed across-blocks table, best mean first."""
    lines = [header, f"{'method':<26} {'score':>8} {'ehnas - method [95% CI over blocks]':>38} {'MDD80':>7}  per block"]
    for label, s in sorted(summary.items(), key=lambda kv: -kv[1]["score"]):
        v = s.get("vs_ehnas")
        diff = f"{v['mean']:+.4f} [{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}]" if v else ""
        blocks = " ".join(f"{x:+.4f}" for x in v["blocks"]) if v else ""
        lines.append(f"{label:<26} {s['score']:8.4f} {diff:>38} {v['mdd80'] if v else float('nan'):7.4f}  {blocks}")
    return "\n".join(lines)


def format_summary(summary: dict[str, Any], header: str) -> str:
    """The printed table of one budget, best mean first."""
    lines = [header, f"{'method':<26} {'score':>16} {'pct':>6} {'evals':>6} {'full':>5} {'ehnas - method [95% CI]':>30} {'MDD80':>7} {'W/L':>7}"]
    for label, s in sorted(summary.items(), key=lambda kv: -(kv[1]["score"] if kv[1]["n"] else -1)):
        if not s["n"]:
            lines.append(f"{label:<26} {'(no winner: not in this table)':>16}")
            continue
        v = s.get("vs_ehnas")
        diff = f"{v['mean']:+.4f} [{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}]" if v else ""
        extra = f"{v['mdd80']:7.4f} {v['ehnas_wins']:>3}/{v['ehnas_losses']:<3}" if v else ""
        lines.append(
            f"{label:<26} {s['score']:.4f} ± {s['se']:.4f} {s['percentile']:6.3f} {s['evaluations']:6.1f} {s['full_trainings']:5.1f} {diff:>30} {extra}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=False)
    parser.add_argument("--seed1", type=Path, default=None, help="the reseeded twin table (default: <table stem>_seed1.csv if it exists)")
    parser.add_argument("--budgets", default="0.1,0.25,0.5", help="budgets as fractions of the pool's full-training cost")
    parser.add_argument(
        "--half", choices=("all", "design", "report"), default="all", help="sample rows to draw pools from (CurveTable.half): design, report or all"
    )
    parser.add_argument("--rows", type=int, default=None, help="only the table's first N sample rows (a figure taken at that size reproduces)")
    parser.add_argument(
        "--blocks", type=int, default=1, help="split the rows into K disjoint interleaved blocks, run each, and add an interval over blocks"
    )
    parser.add_argument("--pool", type=int, default=None, help="rows per seed's pool (default: every sample row)")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--seeds-for", action="append", default=[], help="label=n: fewer seeds for a slow method (the first n)")
    parser.add_argument("--methods", default="all", help="comma list of registered methods, or all")
    parser.add_argument("--variant", action="append", default=[], help="label=method:key=value;key=value (an extra configured method)")
    parser.add_argument("--set", action="append", default=[], help="label.key=value (an option of a listed method or variant)")
    parser.add_argument(
        "--rungs", default="", help="successive-halving rungs in epochs for ehnas and random_sh (default: the methods' own, E//eta and E)"
    )
    parser.add_argument("--eta", type=int, default=None, help="halving rate for ehnas and random_sh (default: the methods' own, 2)")
    parser.add_argument("--out", type=Path, default=Path("compare.json"))
    parser.add_argument("--list", action="store_true", help="list the registered methods and their options")
    args = parser.parse_args()
    if args.list:
        for name in METHODS.names():
            print(f"{name:<24} {options_of(METHODS.get(name))}")
        return
    if args.table is None:
        parser.error("--table is required")
    seed1 = args.seed1 or args.table.with_name(args.table.stem + "_seed1.csv")
    try:
        table = load_curve_table(args.table, seed1 if seed1.exists() else None)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    mapper = PoolMapper(table.archs)
    methods = parse_methods(args)
    limit = {k: int(v) for k, v in (s.split("=") for s in args.seeds_for)}
    try:
        samples = table.half(args.half, args.rows)
    except ValueError as err:
        parser.error(f"--rows: {err}")
    if not 1 <= args.blocks <= len(samples) // 2:
        parser.error(f"--blocks must lie in 1..{len(samples) // 2} (at least 2 rows a block)")
    facts = {
        "table": str(args.table),
        "rows": len(samples),
        "half": args.half,
        "first_rows": args.rows,
        "reference_rows": len(table.rows("reference")),
        "epochs": table.epochs,
        "score": table.score_note,
        "best_score": float(table.score[samples].max()),
        "median_score": float(np.median(table.score[samples])),
        "mean_seconds": float(table.seconds[samples].mean()),
        "neighbour_rho_score": mapper.neighbour_correlation(samples, table.score),
        "methods": {
            label: {"method": m, "options": {k: list(v) if isinstance(v, tuple) else v for k, v in o.items()}} for label, (m, o) in methods.items()
        },
        "blocks": args.blocks,
        "pool": args.pool or len(samples),
        "seeds": args.seeds,
        "seeds_for": limit,
        "command": " ".join(sys.argv),
    }
    print(json.dumps({k: v for k, v in facts.items() if k != "methods"}, indent=1))
    result: dict[str, Any] = {"facts": facts, "budgets": {}}
    blocks = [samples[i :: args.blocks] for i in range(args.blocks)]
    for fraction in (float(f) for f in args.budgets.split(",")):
        per_block = []
        for k, rows in enumerate(blocks):
            start = time.perf_counter()
            runs: dict[str, list[MethodRun]] = {label: [] for label in methods}
            for seed in range(args.seeds):
                pool = pool_for(rows, args.pool, seed)
                budget = fraction * float(table.seconds[pool].sum())
                for label, (name, options) in methods.items():
                    if seed < limit.get(label, args.seeds):
                        runs[label].append(run_method(make_method(name, **options), table, pool, budget, seed, mapper))
            per_block.append(summarise(runs, table))
            mean_budget = fraction * float(table.seconds[rows].mean()) * min(args.pool or len(rows), len(rows))
            header = (
                f"\nbudget {fraction:g} of the pool's full-training cost (~{mean_budget:.0f} simulated s, "
                f"~{mean_budget / facts['mean_seconds']:.1f} full trainings), {args.seeds} seeds, {time.perf_counter() - start:.0f} s"
            )
            print(
                format_summary(per_block[-1], header + (f", block {k + 1} of {args.blocks} ({len(rows)} rows)" if args.blocks > 1 else "")),
                flush=True,
            )
        entry: dict[str, Any] = {"mean_budget_s": mean_budget, "methods": per_block[0]} if args.blocks == 1 else {"blocks": per_block}
        if args.blocks > 1:
            entry["across_blocks"] = across_blocks(per_block)
            print(format_across(entry["across_blocks"], f"budget {fraction:g}, across {args.blocks} disjoint blocks of rows"), flush=True)
        result["budgets"][f"{fraction:g}"] = entry
        atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
