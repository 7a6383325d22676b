"""What a trained hybrid table says about itself: spread, noise floor, and what a budget rewards.

Reads a table from `ehnas bench train` and, optionally, the same sample retrained under another
seed (the noise floor: the Spearman rho between the two runs is the ceiling of any predictor)
and under another budget (which architectures a longer training rewards). Where the table has
learning curves, test accuracies, reference rows and a 1-NN floor (the v2 tables), it also says
where the ranking settles along the schedule, how validation ranks test, and where the reference
networks and the floor sit among the sampled architectures.

    .venv/bin/python benchmarks/hybrid_table.py --table data/tables/hybrid_mnist14.csv \
        [--reseed data/tables/hybrid_mnist14_seed1.csv] [--budget data/tables/hybrid_mnist14_e4.csv] [--out stats.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_lib.bench.train import read_protocol, read_rows  # noqa: E402

FEATURES = ("params", "flops", "depth", "n_cnn", "n_vit", "n_mamba", "epoch1_accuracy")


def frame(table: Path) -> pd.DataFrame:
    """The ok rows with the block-type counts and the first epoch's accuracy as columns."""
    rows = pd.DataFrame(read_rows(table))
    rows = rows[rows["state"] == "ok"].copy()
    if "role" not in rows:
        rows["role"] = "sample"
    rows["role"] = rows["role"].fillna("sample").replace("", "sample")
    for column in ("val_accuracy", "params", "flops", "depth", "seconds", "test_accuracy"):
        if column in rows:
            rows[column] = pd.to_numeric(rows[column], errors="coerce")
    for kind in ("cnn", "vit", "mamba"):
        rows[f"n_{kind}"] = rows["arch"].str.count(rf":{kind}\(")
    rows["epoch1_accuracy"] = rows["history"].map(lambda h: json.loads(h)[0])
    return rows.set_index("arch")


def rho(a: pd.Series, b: pd.Series) -> float:
    return round(float(stats.spearmanr(a, b).statistic), 3)


def describe(rows: pd.DataFrame, failed: int) -> dict:
    acc = rows["val_accuracy"]
    return {
        "n_ok": len(rows),
        "n_failed": failed,
        "min": round(acc.min(), 4),
        "median": round(acc.median(), 4),
        "max": round(acc.max(), 4),
        "std": round(acc.std(), 4),
        "top10pct_threshold": round(acc.quantile(0.9), 4),
        "iqr": [round(acc.quantile(0.25), 4), round(acc.quantile(0.75), 4)],
        "seconds_median": round(rows["seconds"].median(), 1),
        "seconds_total": round(rows["seconds"].sum()),
        "spearman_with_accuracy": {f: rho(rows[f], acc) for f in FEATURES},
        "median_accuracy_by_depth": {int(d): round(v, 4) for d, v in acc.groupby(rows["depth"]).median().items()},
    }


def compare(base: pd.DataFrame, other: pd.DataFrame) -> dict:
    """Agreement of two runs of the same architectures (another seed or another budget)."""
    common = base.index.intersection(other.index)
    a, b = base.loc[common, "val_accuracy"], other.loc[common, "val_accuracy"]
    k = max(1, len(common) // 10)
    return {
        "n": len(common),
        "spearman": rho(a, b),
        "kendall": round(float(stats.kendalltau(a, b).statistic), 3),
        "mean_abs_difference": round(float((a - b).abs().mean()), 4),
        "top10pct_overlap": len(set(a.nlargest(k).index) & set(b.nlargest(k).index)) / k,
        "other_spearman_with": {f: rho(other.loc[common, f], b) for f in FEATURES},
        "base_spearman_with_on_common": {f: rho(base.loc[common, f], a) for f in FEATURES},
        "other_median": round(float(b.median()), 4),
        "base_median_on_common": round(float(a.median()), 4),
        **{
            f"seed_sd_{column}": seed_sd(base.loc[common, column], other.loc[common, column])
            for column in ("val_accuracy", "test_accuracy")
            if column in base and column in other
        },
    }


def seed_sd(a: pd.Series, b: pd.Series) -> dict:
    """An architecture's standard deviation across the two training seeds: per architecture
    |a - b| / sqrt(2) (the unbiased SD estimate from two draws), pooled as sqrt(mean((a - b)^2) / 2),
    with the spread of the table's own rows beside it (noise against signal)."""
    d = (a - b).dropna()
    per_arch = d.abs() / 2**0.5
    return {
        "n": len(d),
        "pooled": round(float((d**2).mean() / 2) ** 0.5, 4),
        "median": round(float(per_arch.median()), 4),
        "max": round(float(per_arch.max()), 4),
        "between_architectures_sd": round(float(a.std()), 4),
        "spearman_across_seeds": rho(a, b),
    }


def curve(rows: pd.DataFrame) -> dict:
    """Where the ranking settles along one schedule: the Spearman rho of the validation accuracy
    after epoch b with the final one, and with epoch 2b (the mid-schedule checkpoints of a single
    cosine run: a lower bound for a short run with its own complete schedule)."""
    histories = rows["history"].map(json.loads)
    epochs = int(histories.map(len).min())
    at = {b: histories.map(lambda h, b=b: h[b - 1]) for b in range(1, epochs + 1)}
    final = at[epochs]
    return {
        "n": len(rows),
        "epochs": epochs,
        "rho_epoch_b_with_final": {b: rho(at[b], final) for b in at},
        "rho_epoch_b_with_2b": {b: rho(at[b], at[2 * b]) for b in at if 2 * b <= epochs},
    }


def held_out(samples: pd.DataFrame, references: pd.DataFrame, floor: dict | None) -> dict:
    """Validation against test, and where the reference networks and the 1-NN floor sit."""
    out: dict = {"spearman_val_with_test": rho(samples["val_accuracy"], samples["test_accuracy"])}
    test = samples["test_accuracy"]
    out["test"] = {"min": round(test.min(), 4), "median": round(test.median(), 4), "max": round(test.max(), 4)}
    out["references"] = {
        arch: {
            "val_accuracy": round(float(r["val_accuracy"]), 4),
            "test_accuracy": round(float(r["test_accuracy"]), 4),
            "share_of_samples_below_on_test": round(float((test < r["test_accuracy"]).mean()), 3),
        }
        for arch, r in references.iterrows()
    }
    if floor:
        out["floor"] = floor | {"share_of_samples_above_on_test": round(float((test > floor["test_accuracy"]).mean()), 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--reseed", type=Path, help="the same sample under another training seed")
    parser.add_argument("--budget", type=Path, help="the same sample under another training budget")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    table = frame(args.table)
    rows, references = table[table["role"] == "sample"], table[table["role"] == "reference"]
    failed = sum(r["state"] == "failed" for r in read_rows(args.table))
    result = {
        "table": str(args.table),
        "protocol": read_protocol(args.table).to_dict() | {"space": "(see protocol file)"},
        "table_stats": describe(rows, failed),
        "learning_curves": curve(rows),
    }
    if "test_accuracy" in rows and rows["test_accuracy"].notna().all():
        floor_file = args.table.with_name(args.table.name + ".floor.json")
        floor = json.loads(floor_file.read_text()) if floor_file.exists() else None
        result["held_out"] = held_out(rows, references, floor)
    if args.reseed:
        result["noise_floor"] = compare(rows, frame(args.reseed))
    if args.budget:
        other = read_protocol(args.budget)
        result["budget"] = {"epochs": other.epochs, **compare(rows, frame(args.budget))}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
