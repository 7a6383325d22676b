"""How to score a training rung: a checkpoint in the middle of the long schedule, or a short run
with its own complete cosine schedule? Measured by the Spearman rho of each with the final result.

For N architectures of a trained table (``ehnas bench train``: each row's ``history`` holds the
validation accuracy after every epoch of ONE cosine schedule over the table's epochs, so
history[b-1] is the mid-schedule checkpoint at epoch b), this trains each architecture for b
epochs under a cosine schedule of b epochs (the table's data, batch, lr and seed; the rung
training of `nas_lib.fidelity.training`) and compares, for every b, the rho of the short run
and of the checkpoint with the final result: ``test_accuracy`` when the table has it (the v2
tables), else ``val_accuracy`` (the MNIST tables, said in the output). The difference of the two
rhos gets a paired bootstrap over the architectures (95% interval, standard error and the
smallest difference this N can detect, 2.8 standard errors).

Every training is appended to a JSON-lines cache (--cache) as it finishes, so a run stopped by
--max-seconds continues where it stopped when started again.

    .venv/bin/python benchmarks/fidelity_schedule.py --table data/tables/hybrid_mnist14_e4.csv \
        --n 8 --budgets 1,2,3 [--cache fidelity_schedule.jsonl] [--max-seconds 280] [--out result.json]
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
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_lib.bench.train import TrainProtocol, build_space, load_protocol_data, protocol_path, read_rows  # noqa: E402
from nas_lib.fidelity.training import RungProtocol, build_seeded, train_to_budget  # noqa: E402


def pick(rows: list[dict[str, Any]], n: int, seed: int | None) -> list[dict[str, Any]]:
    """`n` ok sample rows (reference rows left out), drawn with `seed`, in table order; with seed
    None the first `n` (the table's own order is a seeded sample, and a growing table keeps them)."""
    ok = [
        r for r in rows if r["state"] == "ok" and r.get("role", "sample") in ("sample", "", None) and len(json.loads(r["history"])) == longest(rows)
    ]
    if seed is None:
        return ok[:n]
    chosen = sorted(np.random.default_rng(seed).choice(len(ok), size=min(n, len(ok)), replace=False))
    return [ok[i] for i in chosen]


def longest(rows: list[dict[str, Any]]) -> int:
    """Epochs of the table's full schedule (rows stopped early by patience are left out)."""
    return max(len(json.loads(r["history"])) for r in rows if r["state"] == "ok")


def final_metric(rows: list[dict[str, Any]]) -> str:
    """``test_accuracy`` when every chosen row has it, else ``val_accuracy``."""
    return "test_accuracy" if all(r.get("test_accuracy") not in (None, "") for r in rows) else "val_accuracy"


def table_protocol(table: Path) -> TrainProtocol:
    """The table's protocol (fields this checkout does not know, e.g. a newer ``patience``, are
    dropped: rungs never stop early), its relative data path resolved against the table's repository
    or the nearest folder above it where it exists."""
    import dataclasses

    saved = json.loads(protocol_path(table).read_text(encoding="utf-8"))
    known = {f.name for f in dataclasses.fields(TrainProtocol) if f.init}
    data = dict(saved.get("data", {}))
    path = data.get("path")
    if path and not Path(path).is_absolute() and not Path(path).exists():
        # written relative to the repository it was trained in; a worktree may sit one level deeper
        found = [p for p in (a / path for a in table.resolve().parents[2:]) if p.exists()]
        data["path"] = str(found[0].resolve()) if found else path
    return TrainProtocol.from_dict({**{k: v for k, v in saved.items() if k in known}, "data": data})


def read_cache(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            entry = json.loads(line)
            out[entry["arch"], int(entry["budget"])] = entry
    return out


def train_short(space: Any, data: Any, protocol: Any, arch: str, budget: int) -> dict[str, Any]:
    """One short run: `budget` epochs under a cosine schedule of `budget` epochs."""
    rung = RungProtocol(
        horizon=budget, batch_size=protocol.batch_size, lr=protocol.lr, max_batches_per_epoch=protocol.max_batches_per_epoch, seed=protocol.seed
    )
    result = train_to_budget(build_seeded(space, arch, data, protocol.seed), data, rung, budget)
    return {"arch": arch, "budget": budget, "score": result.score, "seconds": round(result.seconds, 2), "state": result.state}


def paired_bootstrap(a: np.ndarray, b: np.ndarray, truth: np.ndarray, draws: int = 2000, seed: int = 0) -> dict[str, float]:
    """rho(a, truth) - rho(b, truth) over resampled architectures: mean, SE, 95% interval, MDD."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(draws):
        idx = rng.integers(0, len(truth), len(truth))
        if len(set(idx)) < 3:
            continue
        ra, rb = stats.spearmanr(a[idx], truth[idx]).statistic, stats.spearmanr(b[idx], truth[idx]).statistic
        if not (math.isnan(ra) or math.isnan(rb)):
            diffs.append(ra - rb)
    d = np.array(diffs)
    se = float(d.std(ddof=1))
    return {
        "mean": round(float(d.mean()), 3),
        "se": round(se, 3),
        "ci95": [round(float(np.quantile(d, 0.025)), 3), round(float(np.quantile(d, 0.975)), 3)],
        "mdd": round(2.8 * se, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=Path("data/tables/hybrid_mnist14_e4.csv"))
    parser.add_argument("--n", type=int, default=8, help="architectures of the table to train")
    parser.add_argument("--budgets", default="1,2,3", help="run epochs b (each also read as history[b-1]; beyond the table's epochs, a longer run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the choice of architectures (-1: the first --n rows of the table)")
    parser.add_argument("--shard", default="0/1", help="i/k: train only the architectures at positions i, i+k, ... (k processes share one cache)")
    parser.add_argument(
        "--cache", type=Path, default=None, help="JSON lines of finished trainings (default: <table>.fidelity_schedule.jsonl under /tmp)"
    )
    parser.add_argument("--max-seconds", type=float, default=None, help="stop starting trainings after this many seconds (rerun to continue)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    budgets = [int(b) for b in args.budgets.split(",")]
    rows = pick(read_rows(args.table), args.n, None if args.seed < 0 else args.seed)
    shard, shards = (int(x) for x in args.shard.split("/"))
    metric = final_metric(rows)
    protocol = table_protocol(args.table)
    cache_path = args.cache or Path("/tmp") / f"{args.table.stem}.fidelity_schedule.jsonl"
    done = read_cache(cache_path)
    print(f"{args.table}: {len(rows)} architectures, final = {metric}" + ("" if metric == "test_accuracy" else " (the table has no test_accuracy)"))
    print(f"protocol: {protocol.epochs} epochs, batch {protocol.batch_size}, lr {protocol.lr}, seed {protocol.seed}; cache {cache_path}")
    space, data, start = build_space(protocol.space), load_protocol_data(protocol), time.perf_counter()
    for b in budgets:
        for r in rows[shard::shards]:
            if (r["arch"], b) in done:
                continue
            if args.max_seconds is not None and time.perf_counter() - start > args.max_seconds:
                print(f"stopped after {time.perf_counter() - start:.0f} s (--max-seconds); run again to continue")
                return
            entry = train_short(space, data, protocol, r["arch"], b)
            done[r["arch"], b] = entry
            with cache_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
            history = json.loads(r["history"])
            mid = f"mid {history[b - 1]:.4f}" if b <= len(history) else f"table's last epoch {history[-1]:.4f}"
            print(f"b={b} {r['arch_id']} short {entry['score']:.4f} {mid} ({entry['seconds']:.1f} s)", flush=True)
    done = read_cache(cache_path)  # with the other shards' trainings
    if any((r["arch"], b) not in done for b in budgets for r in rows):
        print("this shard is done; the report waits for the other shards (run again without --shard once they finish)")
        return
    print(json.dumps(report(rows, budgets, done, metric, protocol.epochs), indent=2))
    if args.out:
        args.out.write_text(json.dumps(report(rows, budgets, done, metric, protocol.epochs), indent=2) + "\n", encoding="utf-8")


def report(rows: list[dict[str, Any]], budgets: list[int], done: dict, metric: str, epochs: int) -> dict[str, Any]:
    """Per budget: rho of the short run and of the mid-schedule checkpoint with the final result; a
    budget beyond the table's epochs is a longer run, ranked against the table (is the table's
    budget settled: rho(b, 2b)?)."""
    truth = np.array([float(r[metric]) for r in rows])
    out: dict[str, Any] = {
        "n": len(rows),
        "final": metric,
        "table_epochs": epochs,
        "random_rho_95": round(1.96 / math.sqrt(max(len(rows) - 1, 1)), 2),
    }
    for b in budgets:
        short = np.array([done[r["arch"], b]["score"] for r in rows])
        if b > epochs:
            out[f"b{b}"] = {
                "rho_with_table_val": round(float(stats.spearmanr(short, [float(r["val_accuracy"]) for r in rows]).statistic), 3),
                "rho_with_table_last_epoch": round(float(stats.spearmanr(short, [json.loads(r["history"])[-1] for r in rows]).statistic), 3),
                "rho_with_final": round(float(stats.spearmanr(short, truth).statistic), 3),
                "long_seconds_mean": round(float(np.mean([done[r["arch"], b]["seconds"] for r in rows])), 1),
            }
            continue
        mid = np.array([json.loads(r["history"])[b - 1] for r in rows])
        out[f"b{b}"] = {
            "rho_short": round(float(stats.spearmanr(short, truth).statistic), 3),
            "rho_short_final_val": round(float(stats.spearmanr(short, [float(r["val_accuracy"]) for r in rows]).statistic), 3),
            "rho_mid": round(float(stats.spearmanr(mid, truth).statistic), 3),
            "short_minus_mid": paired_bootstrap(short, mid, truth),
            "short_seconds_mean": round(float(np.mean([done[r["arch"], b]["seconds"] for r in rows])), 1),
        }
    return out


if __name__ == "__main__":
    main()
