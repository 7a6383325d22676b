"""End to end on the hybrid space: does the pipeline's winner beat random search of equal budget?

Runs the real Prefect pipeline (knowledge, three pruning layers, population, evaluation, search,
finalist training; registration off) once per seed and search strategy, on the data, space and
training budget of a trained table from `ehnas bench train`. Each winner is then scored under
the table's protocol (its row when the table has it, else trained exactly as the table's rows
were), and placed in the table's distribution: percentile, top 10% or not, against the table's
median and against the expected best of k random architectures (k = the finalists the pipeline
trains, so the training budget is equal).

    .venv/bin/python benchmarks/hybrid_end_to_end.py --table data/tables/hybrid_mnist14.csv \
        --seeds 5 --strategies rea,random [--set evaluation.proxies=[params,nwot] ...] --out result.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from math import comb
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.pipeline import nas_pipeline, prefect_settings  # noqa: E402
from nas_lib.bench.train import build_space, load_protocol_data, load_table, read_protocol, train_architecture  # noqa: E402
from nas_lib.steps import Step  # noqa: E402
from tasks.config import load_config  # noqa: E402
from tasks.run_folder import RunFolder  # noqa: E402
from tasks.training import winner  # noqa: E402


def protocol_overrides(protocol) -> list[str]:  # noqa: ANN001
    """The pipeline settings that make its finalist training the table's protocol."""
    d = protocol.data
    pairs = {
        "data.kind": d["kind"],
        "data.path": d.get("path"),
        "data.image_size": d.get("image_size"),
        "data.max_items": d.get("max_items"),
        "data.val_fraction": d.get("val_fraction"),
        "training.epochs": protocol.epochs,
        "training.batch_size": protocol.batch_size,
        "training.lr": protocol.lr,
        "training.max_batches_per_epoch": protocol.max_batches_per_epoch,
    }
    return [f"{k}={'null' if v is None else v}" for k, v in pairs.items()]


def expected_best_of(values: np.ndarray, k: int) -> float:
    """E[max of k draws without replacement] from `values` (exact, by order statistics)."""
    v = np.sort(values)
    n = len(v)
    weights = np.array([comb(i, k - 1) for i in range(n)], dtype=float) / comb(n, k)  # P(max is the i-th smallest)
    return float(weights @ v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--strategies", default="rea,random")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra pipeline override key=value")
    parser.add_argument("--runs-root", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=Path("hybrid_end_to_end.json"))
    args = parser.parse_args()

    protocol = read_protocol(args.table)
    truth = load_table(args.table)
    space = build_space(protocol.space)
    root = args.runs_root or Path(tempfile.mkdtemp(prefix="ehnas-e2e-"))
    base = [*protocol_overrides(protocol), "registry.enabled=false", f"runs_root={root}", "torch_threads=1", *args.overrides]
    data = None
    results: dict[str, list[dict]] = {}
    with prefect_settings(home=root / ".prefect"):
        for strategy in args.strategies.split(","):
            for seed in range(args.seeds):
                cfg = load_config(None, [*base, f"seed={seed}", f"search.strategy={strategy}", f"run_name=e2e-{strategy}-{seed}"])
                start = time.perf_counter()
                run_dir = nas_pipeline(config=cfg)["run_dir"]
                seconds = time.perf_counter() - start
                run = RunFolder(run_dir)
                best = winner(run.read_step(Step.TRAINING))
                arch = best["arch"]
                if arch in truth:
                    accuracy, source = truth[arch], "table"
                elif seed == protocol.seed == protocol.data.get("seed"):  # the run's split and seed are the protocol's
                    accuracy, source = best["val_accuracy"], "pipeline"
                else:
                    data = data if data is not None else load_protocol_data(protocol)
                    accuracy, source = train_architecture(space, arch, data, protocol)[0]["val_accuracy"], "trained"
                evaluated = len(run.read_step(Step.EVALUATIONS)) + len(run.read_step(Step.SEARCH))
                row = {
                    "seed": seed,
                    "arch": arch,
                    "accuracy": accuracy,
                    "source": source,
                    "evaluation_rows": evaluated,
                    "pipeline_seconds": round(seconds, 1),
                }
                results.setdefault(strategy, []).append(row)
                print(f"{strategy} seed {seed}: {accuracy:.4f} ({source}) {seconds:.0f} s", flush=True)
    values = np.array(list(load_table(args.table).values()))  # the table may have grown meanwhile
    for rows in results.values():
        for row in rows:
            row["percentile"] = float((values < row["accuracy"]).mean())
            row["top10pct"] = row["percentile"] >= 0.9
    top_k = load_config(None, base).training.top_k
    summary = {
        "table": str(args.table),
        "n_table": len(values),
        "table_median": float(np.median(values)),
        "table_top10pct_threshold": float(np.quantile(values, 0.9)),
        "table_max": float(values.max()),
        f"expected_best_of_{top_k}_random": expected_best_of(values, top_k),
        "overrides": base[len(protocol_overrides(protocol)) :],
        "strategies": {
            s: {"mean_accuracy": float(np.mean([r["accuracy"] for r in rows])), "top10pct_seeds": int(sum(r["top10pct"] for r in rows)), "runs": rows}
            for s, rows in results.items()
        },
    }
    args.out.write_text(json.dumps(summary, indent=2))
    for s, r in summary["strategies"].items():
        print(f"{s:<8} mean {r['mean_accuracy']:.4f}  top-10% in {r['top10pct_seeds']}/{args.seeds} seeds")
    print(
        f"table median {summary['table_median']:.4f}, top-10% threshold {summary['table_top10pct_threshold']:.4f}, "
        f"expected best of {top_k} random {summary[f'expected_best_of_{top_k}_random']:.4f}; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
