"""How well the hybrid supernet ranks a trained hybrid table, by the supernet's training budget.

Trains the ``--method`` supernet (`nas_lib.oneshot`: ``hybrid_spos``, ``hybrid_enas`` or
``hybrid_gdas``) on the table's own data and split, under the table's space, and after each
epoch count in ``--at`` scores every ok row of the table by inherited-weight accuracy on the
validation split (BN recalibrated per row). Each scored checkpoint appends one JSON line to
``--out``: the Spearman rho of inherited accuracy with the table's validation and test accuracy,
the supernet's training seconds so far and the scoring seconds. The supernet checkpoints in
``--cache``, so a killed run resumes from its last epoch, and a rerun of the same variant
(method, optimizer, lr, epochs, sandwich, sampling, seed) skips the checkpoints already in ``--out``.
``--summary`` prints the lines beside what the table itself offers at a comparable cost (flops,
and every row trained for 1 or 2 epochs).

    .venv/bin/python benchmarks/oneshot_hybrid.py --table data/tables/hybrid_cifar10_v2.csv \
        --epochs 10 --at 2,5,10 --out data/tables/hybrid_cifar10_v2.oneshot.jsonl [--summary]

The intermediate checkpoints are points along one cosine schedule of ``--epochs`` epochs, not
separately scheduled shorter trainings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_lib.artifacts import append_json_line, read_json_lines  # noqa: E402
from nas_lib.bench.train import build_space, load_protocol_data, read_protocol, read_rows  # noqa: E402
from nas_lib.oneshot import OneShotConfig, inherited_accuracy, train_supernet  # noqa: E402

VARIANT = {
    "method": None,
    "optimizer": None,
    "lr": None,
    "epochs": None,
    "sandwich": None,
    "sampling": "architecture",
    "seed": None,
}  # the keys that name one supernet training (a default: lines older than the key)


def _rho(a: list[float], b: list[float]) -> float:
    return float(spearmanr(a, b).statistic)


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    protocol = read_protocol(args.table)
    space, data = build_space(protocol.space), load_protocol_data(protocol)
    rows = [r for r in read_rows(args.table) if r["state"] == "ok" and r.get("test_accuracy")]
    out = Path(args.out)
    lines = read_json_lines(out)
    variant = (args.method, args.optimizer, args.lr, args.epochs, not args.no_sandwich, args.sampling, args.seed)
    lines = [line for line in lines if tuple(line.get(k, default) for k, default in VARIANT.items()) == variant]
    done = {line["epoch"] for line in lines}
    trained = max((line["train_seconds"] for line in lines), default=0.0)  # training seconds before this process
    config = OneShotConfig(
        method=args.method,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        epochs=args.epochs,
        batch_size=args.batch_size,
        sandwich=not args.no_sandwich,
        sampling=args.sampling,
        seed=args.seed,
    )
    for epoch in sorted(set(args.at)):
        if epoch in done:
            continue
        outcome = train_supernet(space, data, config, args.cache, stop_after=epoch)
        trained += outcome.seconds
        start = time.perf_counter()
        model = outcome.method.model
        scores = [inherited_accuracy(model, space.from_string(r["arch"]), data) for r in rows]
        line = {
            "epoch": epoch,
            "method": args.method,
            "optimizer": args.optimizer,
            "lr": args.lr,
            "epochs": args.epochs,
            "sandwich": config.sandwich,
            "sampling": config.sampling,
            "seed": args.seed,
            "rows": len(rows),
            "rho_val": _rho(scores, [float(r["val_accuracy"]) for r in rows]),
            "rho_test": _rho(scores, [float(r["test_accuracy"]) for r in rows]),
            "train_seconds": trained,
            "score_seconds": time.perf_counter() - start,
            "inherited": dict(zip([r["arch_id"] for r in rows], scores)),
        }
        append_json_line(out, line)
        print(f"epoch {epoch}: rho val {line['rho_val']:.3f} test {line['rho_test']:.3f} ({line['score_seconds']:.0f} s scoring)", flush=True)


def summary(args: argparse.Namespace) -> None:
    rows = [r for r in read_rows(args.table) if r["state"] == "ok" and r.get("test_accuracy")]
    test = [float(r["test_accuracy"]) for r in rows]
    print(f"{len(rows)} rows of {args.table}")
    print(f"flops: rho test {_rho([float(r['flops']) for r in rows], test):.3f} (no training)")
    for b in (1, 2):
        curve = [json.loads(r["history"])[b - 1] for r in rows]
        seconds = sum(float(r["seconds"]) * b / protocol_epochs(args.table) for r in rows)
        print(f"every row trained {b} epoch(s): rho test {_rho(curve, test):.3f}, {seconds / 60:.0f} core-minutes (table's seconds)")
    for line in read_json_lines(args.out):
        print(
            f"{line.get('method', 'hybrid_spos')} epoch {line['epoch']}/{line['epochs']} ({line.get('optimizer', 'sgd')}, sandwich {line['sandwich']}, "
            f"seed {line['seed']}): rho val {line['rho_val']:.3f}, "
            f"test {line['rho_test']:.3f}; scoring {line['score_seconds'] / 60:.1f} min"
        )
        ids = [r["arch_id"] for r in rows]
        top = np.argsort([-line["inherited"][i] for i in ids])[:10]
        print(f"  its top 10 by inherited accuracy: mean test {np.mean([test[k] for k in top]):.4f} (all rows {np.mean(test):.4f})")


def protocol_epochs(table: str) -> int:
    return read_protocol(table).epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--at", type=lambda s: [int(x) for x in s.split(",")], default=[2, 5, 10])
    parser.add_argument("--method", choices=["hybrid_spos", "hybrid_enas", "hybrid_gdas"], default="hybrid_spos")
    parser.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sandwich", action="store_true")
    parser.add_argument("--sampling", choices=["decision", "architecture"], default="decision", help="hybrid_spos: how a path is drawn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default=str(Path("~/.cache/ehnas/oneshot").expanduser()))
    parser.add_argument("--summary", action="store_true", help="print the lines of --out beside the table's own cheap rankings")
    args = parser.parse_args()
    if any(e < 1 or e > args.epochs for e in args.at):
        parser.error(f"--at epochs must lie in 1..{args.epochs}")
    if not Path(args.table).exists():
        parser.error(f"no table at {args.table}")
    try:
        read_json_lines(args.out)
    except ValueError as err:  # a damaged line of --out: nothing is appended to it
        parser.error(str(err))
    summary(args) if args.summary else run(args)


if __name__ == "__main__":
    main()
