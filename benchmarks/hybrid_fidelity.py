"""How well each proxy ranks hybrid architectures by their accuracy after a short training.

No benchmark table exists for the hybrid space, so this builds a small one: it samples
architectures from the space of a pipeline config (the default run's, unless --set changes it),
scores them with the proxies on the run's fixed proxy batch, trains each for the run's training
budget, and prints the Spearman correlation of every proxy with the validation accuracy. The
baseline is the correlation a random score would have (0, with the printed 95% band).

    .venv/bin/python benchmarks/hybrid_fidelity.py [--n 30] [--proxies nwot,params,...] \
        [--set key=value ...] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas_lib.proxies import score_proxies  # noqa: E402
from nas_lib.train import TrainConfig, train_and_evaluate  # noqa: E402
from tasks.config import load_config  # noqa: E402
from tasks.context import apply_runtime  # noqa: E402
from tasks.data_ref import DataRef, proxy_batch  # noqa: E402
from tasks.run_folder import RunFolder  # noqa: E402
from tasks.spaces import space_from_dict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="architectures to sample, score and train")
    parser.add_argument("--proxies", default="nwot,params,flops,synflow,snip,grad_norm,jacov,zen,ensemble")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="pipeline config override key=value")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="ehnas-fidelity-")
    cfg = load_config(None, [f"runs_root={root}", "run_name=fidelity", *args.overrides])
    apply_runtime(cfg)
    run = RunFolder.create(cfg)
    space, data = space_from_dict(run.space_dict()), DataRef.of(cfg).load()
    batch = proxy_batch(data, cfg.data.proxy_batch, cfg.seed)
    names = [n.strip() for n in args.proxies.split(",") if n.strip()]
    rng = np.random.default_rng(cfg.seed)
    depths = [d for d, count in space.size_by_depth().items() if count]
    specs = list(dict.fromkeys(space.sample(rng, depth=int(rng.choice(depths))) for _ in range(args.n)))
    t = cfg.training
    rows = []
    for i, spec in enumerate(specs):
        start = time.perf_counter()
        scores = score_proxies(space, spec, names, batch, cfg.seed)
        model = space.build_model(spec, input_shape=tuple(data.input_shape), num_classes=data.num_classes)
        result = train_and_evaluate(model, data, TrainConfig(epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, seed=cfg.seed))
        accuracy = result.metrics.get("val_accuracy", math.nan) if result.state == "ok" else math.nan
        rows.append(
            {
                "arch": space.to_string(spec),
                "depth": spec.depth,
                "val_accuracy": accuracy,
                **{n: (r.value if r.ok else math.nan) for n, r in scores.items()},
            }
        )
        print(f"[{i + 1}/{len(specs)}] depth {spec.depth} val_accuracy {accuracy:.4f} ({time.perf_counter() - start:.1f} s)", flush=True)

    acc = np.array([r["val_accuracy"] for r in rows])
    band = 1.96 / math.sqrt(max(len(rows) - 1, 1))
    print(f"\n{len(rows)} architectures, val accuracy {np.nanmin(acc):.3f}..{np.nanmax(acc):.3f}; random score: rho 0 +- {band:.2f} (95%)")
    report = {}
    for name in names:
        values = np.array([r[name] for r in rows])
        ok = ~np.isnan(values) & ~np.isnan(acc)
        rho = float(stats.spearmanr(values[ok], acc[ok]).statistic) if ok.sum() > 2 else math.nan
        report[name] = {"spearman": rho, "scored": int(ok.sum())}
        print(f"  {name:<10} rho {rho:+.3f}  ({int(ok.sum())} scored)")
    if args.out:
        args.out.write_text(json.dumps({"config_overrides": args.overrides, "proxies": report, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
