"""Refit the `ensemble` proxy's weights and quantiles from scored NB201 cells.

Reads per-architecture scores (the Parquet written by `ehnas bench proxies --checkpoint`), the
NB201 CIFAR-10 table, fits on a seeded half of the cells and reports the Spearman on the other
half; with --write, replaces the constants block in nas_lib/proxies/ensemble.py.

    .venv/bin/python benchmarks/fit_ensemble.py --scores scores.parquet \
        --table ../shared/data/nb201/nb201_cifar10.csv --members nwot,synflow,params [--write]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from nas_lib.artifacts import read_table
from nas_lib.bench.proxies import fit_ensemble, load_metric_table

MODULE = Path(__file__).resolve().parents[1] / "nas_lib" / "proxies" / "ensemble.py"
BLOCK = re.compile(r"(# --- fitted constants.*?\n)(.*?)(# -{20,}\n)", re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", required=True, type=Path)
    parser.add_argument("--table", required=True, type=Path)
    parser.add_argument("--metric", default="cifar10_test_acc")
    parser.add_argument("--members", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    members = [m.strip() for m in args.members.split(",") if m.strip()]
    frame = read_table(args.scores)
    fit = fit_ensemble(frame, load_metric_table(args.table, args.metric), members, seed=args.seed)
    summary = {k: v for k, v in fit.items() if k != "quantiles"}
    print(json.dumps(summary, indent=2))
    if args.write:
        note = (f"fitted on {fit['n_fit']} NB201 CIFAR-10 cells ({args.scores.name}, seed {args.seed}) by "
                f"benchmarks/fit_ensemble.py: Spearman {fit['fit_spearman']} on them, {fit['holdout_spearman']} "
                f"on the {fit['n_holdout']} held-out cells")
        body = (f"FIT_NOTE = {note!r}\n"
                f"WEIGHTS: dict[str, float] = {fit['weights']!r}\n"
                "QUANTILES: dict[str, list[float]] = {\n"
                + "".join(f"    {m!r}: {[float(f'{v:.6g}') for v in q]},\n" for m, q in fit["quantiles"].items())
                + "}\n")
        text = MODULE.read_text()
        MODULE.write_text(BLOCK.sub(lambda m: m.group(1) + body + m.group(3), text, count=1))
        print(f"wrote constants into {MODULE}")


if __name__ == "__main__":
    main()
