"""Refit the `ensemble` proxy's weights and quantiles from scored NB201 cells.

Reads per-architecture scores (the Parquet written by `ehnas bench proxies --checkpoint`), the
NB201 CIFAR-10 table, fits on a seeded half of the cells and reports the Spearman on the other
half; with --write, replaces the constants block in nas_lib/proxies/ensemble.py.

    .venv/bin/python benchmarks/fit_ensemble.py --scores scores.parquet \
        --table ../shared/data/nb201/nb201_cifar10.csv --members nwot,synflow,params [--write]

With --reference-out (no table, no fitting), writes instead the reference distributions that
the fit-free aggregations place a single architecture in (nas_lib/proxies/reference.py): 101
quantiles of each member's successful scores over the scored cells, no accuracy read.

    .venv/bin/python benchmarks/fit_ensemble.py --scores scores.parquet --reference-out
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from nas_lib.artifacts import read_table
from nas_lib.bench.proxies import fit_ensemble, load_metric_table
from nas_lib.proxies import PROXIES
from nas_lib.proxies.az_nas import MEMBERS as AZ_MEMBERS
from nas_lib.proxies.ensemble import FREE_MEMBERS, WEIGHTS

MODULE = Path(__file__).resolve().parents[1] / "nas_lib" / "proxies" / "ensemble.py"
REFERENCE = MODULE.with_name("reference.py")
BLOCK = re.compile(r"(# --- fitted constants.*?\n)(.*?)(# -{20,}\n)", re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", required=True, type=Path)
    parser.add_argument("--table", type=Path)
    parser.add_argument("--metric", default="cifar10_test_acc")
    parser.add_argument("--members", default="")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--reference-out", action="store_true", help="write reference quantiles of the fit-free members")
    args = parser.parse_args()
    members = [m.strip() for m in args.members.split(",") if m.strip()]
    frame = read_table(args.scores)
    if args.reference_out:
        write_reference(frame, args.scores.name)
        return
    if args.table is None or not members:
        parser.error("fitting needs --table and --members")
    fit = fit_ensemble(frame, load_metric_table(args.table, args.metric), members, seed=args.seed)
    summary = {k: v for k, v in fit.items() if k != "quantiles"}
    print(json.dumps(summary, indent=2))
    if args.write:
        note = (
            f"fitted on {fit['n_fit']} NB201 CIFAR-10 cells ({args.scores.name}, seed {args.seed}) by "
            f"benchmarks/fit_ensemble.py: Spearman {fit['fit_spearman']} on them, {fit['holdout_spearman']} "
            f"on the {fit['n_holdout']} held-out cells"
        )
        body = (
            f"FIT_NOTE = {note!r}\n"
            f"WEIGHTS: dict[str, float] = {fit['weights']!r}\n"
            "QUANTILES: dict[str, list[float]] = {\n"
            + "".join(f"    {m!r}: {[float(f'{v:.6g}') for v in q]},\n" for m, q in fit["quantiles"].items())
            + "}\n"
        )
        text = MODULE.read_text()
        MODULE.write_text(BLOCK.sub(lambda m: m.group(1) + body + m.group(3), text, count=1))
        print(f"wrote constants into {MODULE}")


def write_reference(frame: pd.DataFrame, source: str) -> None:
    """Writes 101 quantiles of every fit-free member's current-version successful scores."""
    names = sorted(set(FREE_MEMBERS) | set(AZ_MEMBERS) | set(WEIGHTS))
    lines, counts = [], {}
    for name in names:
        sub = frame[(frame["proxy"] == name) & (frame["version"] == PROXIES.get(name).version) & (frame["state"] == "ok")]
        values = sub.drop_duplicates("arch")["value"].astype(float).to_numpy()
        values = values[np.isfinite(values)] * (1.0 if PROXIES.get(name).higher_is_better else -1.0)
        if len(values) < 10:
            continue
        counts[name] = len(values)
        q = np.quantile(values, np.linspace(0, 1, 101))
        lines.append(f"    {name!r}: {[float(f'{v:.6g}') for v in q]},\n")
    note = f"quantiles of member scores of {min(counts.values()) if counts else 0}+ NB201 cells ({source}); no accuracy read"
    text = REFERENCE.read_text()
    head = text[: text.index("NOTE = ")]
    REFERENCE.write_text(head + f"NOTE = {note!r}\nQUANTILES: dict[str, list[float]] = {{\n" + "".join(lines) + "}\n")
    print(f"wrote {len(counts)} reference distributions into {REFERENCE}: {counts}")


if __name__ == "__main__":
    main()
