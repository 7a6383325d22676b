"""Real runs that confirm the tabular comparison: same methods, pools, seeds and budgets, real training.

`benchmarks/compare.py` replays a trained table; this script runs the same methods on the same
seed's pool and budget with every evaluation trained for real under a new training seed
(`nas_lib.bench.simulate.real.TrainingObjective`: the pipeline's rung training, one cosine
schedule over the table's epochs, promotions continuing from their checkpoint). The budget is
charged in the table's recorded seconds, so a real run spends what the simulation of the same
seed spends; the seconds really trained are kept beside. The real winner is continued to the full
epochs and scored on the test split; its 2-seed score is the mean of that and its table (training
seed 0) test accuracy.

One JSON line per (budget, seed, method) is appended to --out when it finishes, with the same
seed's simulated winner and score; a rerun skips the lines already there, so a killed run
resumes. Methods can run in separate processes on one --out. --summary prints, per budget: real
and simulated mean ± standard error over the seeds, the paired difference real - simulated per
method, and ehnas - method on the real scores with its 95% interval and MDD80.

    .venv/bin/python benchmarks/real_runs.py --table data/tables/hybrid_cifar10_v2.csv --rows 98 \
        --half report --pool 20 --budgets 0.1 --seeds 3 --methods ehnas,random_sh --out real.jsonl
    .venv/bin/python benchmarks/real_runs.py --table data/tables/hybrid_cifar10_v2.csv --summary real.jsonl
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_lib.artifacts import append_json_line, read_json_lines  # noqa: E402
from nas_lib.bench.paired import mean_se, paired_difference  # noqa: E402
from nas_lib.bench.simulate import METHODS, CurveTable, PoolMapper, TabularObjective, load_curve_table, make_method, pool_for, run_method  # noqa: E402
from nas_lib.bench.simulate.real import TrainingObjective  # noqa: E402
from nas_lib.bench.train import build_space, load_protocol_data, read_protocol  # noqa: E402
from nas_lib.fidelity.training import RungProtocol  # noqa: E402


class Trainer:
    """Makes each real run's `TrainingObjective` and keeps the last one made (its log and wall time)."""

    def __init__(self, space: Any, data: Any, protocol: RungProtocol, device: str) -> None:
        self.space, self.data, self.protocol, self.device = space, data, protocol, device
        self.last: TrainingObjective | None = None

    def __call__(self, table: CurveTable, rows: Iterable[int], budget: float) -> TabularObjective:
        self.last = TrainingObjective(table, rows, budget, space=self.space, data=self.data, protocol=self.protocol, device=self.device)
        return self.last


def done_keys(path: Path) -> set[tuple[str, int, str]]:
    """(budget, seed, method) of the lines already in `path`."""
    return {(r["budget_fraction"], r["seed"], r["method"]) for r in read_json_lines(path)}


def _column(by: dict[tuple[str, int], dict[str, Any]], seeds: list[int], method: str, key: str) -> list[float]:
    """`key` of `method`'s line per seed (NaN where a seed has none)."""
    return [by[(method, s)][key] if (method, s) in by else math.nan for s in seeds]


def summary(lines: list[dict[str, Any]]) -> str:
    """Per budget: real and simulated mean ± SE, real - simulated, and ehnas - method on real scores."""
    out = []
    for fraction in sorted({r["budget_fraction"] for r in lines}):
        rows = [r for r in lines if r["budget_fraction"] == fraction]
        methods = sorted({r["method"] for r in rows}, key=lambda m: (m != "ehnas", m))
        seeds = sorted({r["seed"] for r in rows})
        by = {(r["method"], r["seed"]): r for r in rows}
        column = functools.partial(_column, by, seeds)
        out.append(f"\nbudget {fraction} of the pool's full-training cost, seeds {seeds}")
        out.append(f"{'method':<12} {'real test':>16} {'2-seed':>16} {'simulated':>16} {'real - sim [95% CI]':>28} {'same winner':>11} {'wall s':>7}")
        for m in methods:
            real, two, sim = mean_se(column(m, "real_score")), mean_se(column(m, "two_seed_score")), mean_se(column(m, "sim_score"))
            d = paired_difference(column(m, "real_score"), column(m, "sim_score"))
            same = sum(by[(m, s)]["real_row"] == by[(m, s)]["sim_row"] for s in seeds if (m, s) in by)
            wall = np.nanmean(column(m, "wall_s"))
            out.append(
                f"{m:<12} {real.mean:.4f} ± {real.se:.4f} {two.mean:.4f} ± {two.se:.4f} {sim.mean:.4f} ± {sim.se:.4f} "
                f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}] {same:>7}/{real.n:<3} {wall:7.0f}"
            )
        for m in methods[1:] if methods and methods[0] == "ehnas" else []:
            for key, name in (("real_score", "real"), ("two_seed_score", "2-seed"), ("sim_score", "simulated")):
                d = paired_difference(column("ehnas", key), column(m, key))
                out.append(
                    f"ehnas - {m} ({name}): {d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}], MDD80 {d.mdd:.4f}, W/L {d.wins}/{d.losses} over {d.n} seeds"
                )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--half", choices=("all", "design", "report"), default="report")
    parser.add_argument("--rows", type=int, default=None, help="only the table's first N sample rows (as in compare.py)")
    parser.add_argument("--pool", type=int, default=20, help="rows per seed's pool")
    parser.add_argument("--budgets", default="0.1", help="budgets as fractions of the pool's full-training cost (table seconds)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="start at this seed (processes sharing --out can split the seeds)")
    parser.add_argument("--methods", default="ehnas,random_sh", help="comma list of registered comparison methods, each at its defaults")
    parser.add_argument("--train-seed", type=int, default=1, help="training seed of the real runs (the table's rows were trained with 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("real_runs.jsonl"))
    parser.add_argument("--summary", type=Path, default=None, help="print the summary of this JSON-lines file and stop")
    args = parser.parse_args()
    if args.summary is not None:
        if not args.summary.exists():
            parser.error(f"--summary: {args.summary} does not exist")
        try:
            print(summary(read_json_lines(args.summary)))
        except ValueError as err:
            parser.error(f"--summary: {err}")
        return
    unknown = [m for m in args.methods.split(",") if m not in METHODS.names()]
    if unknown:
        parser.error(f"--methods: unknown {', '.join(unknown)}; known: {', '.join(METHODS.names())}")

    torch.set_num_threads(args.threads)
    try:
        protocol = read_protocol(args.table)
        seed1 = args.table.with_name(args.table.stem + "_seed1.csv")
        sim_table = load_curve_table(args.table, seed1 if seed1.exists() else None)  # what compare.py scores by
        table = load_curve_table(args.table)  # one seed: the winner's table test accuracy, training seed 0
        done = done_keys(args.out)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    mapper = PoolMapper(table.archs)
    try:
        samples = table.half(args.half, args.rows)
    except ValueError as err:
        parser.error(f"--rows: {err}")
    space, data = build_space(protocol.space), load_protocol_data(protocol)
    factory = Trainer(space, data, protocol.rung_protocol(args.train_seed), args.device)
    for fraction in args.budgets.split(","):
        for seed in range(args.first_seed, args.seeds):
            pool = pool_for(samples, args.pool, seed)
            budget = float(fraction) * float(table.seconds[pool].sum())
            for name in args.methods.split(","):
                if (fraction, seed, name) in done:
                    continue
                sim = run_method(make_method(name), sim_table, pool, budget, seed, mapper)
                real = run_method(make_method(name), table, pool, budget, seed, mapper, factory)
                objective = factory.last
                assert objective is not None
                line = {
                    "budget_fraction": fraction,
                    "seed": seed,
                    "method": name,
                    "train_seed": args.train_seed,
                    "pool": [int(r) for r in pool],
                    "budget_s": budget,
                    "real_row": real.row,
                    "real_arch": real.winner,
                    "real_val": real.val,
                    "real_score": real.score,
                    "table_seed0_score": float(table.score[real.row]) if real.row >= 0 else math.nan,
                    "two_seed_score": (real.score + float(table.score[real.row])) / 2 if real.row >= 0 else math.nan,
                    "sim_row": sim.row,
                    "sim_score": sim.score,
                    "evaluations": [[e.row, e.budget, e.value] for e in objective.log],
                    "charged_s": real.spent,
                    "wall_s": objective.wall,
                    "failures": {str(k): v for k, v in objective.failures.items()},
                }
                append_json_line(args.out, line)
                print(
                    f"budget {fraction} seed {seed} {name}: real {real.score:.4f} (row {real.row}), simulated {sim.score:.4f} (row {sim.row}), "
                    f"{objective.wall:.0f} s trained for {real.spent:.0f} s charged",
                    flush=True,
                )


if __name__ == "__main__":
    main()
