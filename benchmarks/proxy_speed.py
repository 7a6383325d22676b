"""Proxy cost against a plain pass of the same network and batch, measured in one process.

For each NB201 cell below and each proxy, prints the median wall time of the proxy (network
already built, as it is for the baseline) and its ratio to the baseline: a plain forward
(`model(x)` under no_grad, train mode as built) for forward-only proxies, a plain
forward+backward (cross-entropy, gradients of all weights) for gradient proxies. Targets:
nwot <= 1.2x forward, other forward-only proxies <= 1.5x forward, gradient proxies <= 1.5x
forward+backward.

    .venv/bin/python benchmarks/proxy_speed.py --images ../shared/data/cifar10_train1000.npz \
        [--proxies nwot,synflow] [--repeats 5] [--threads 1]

With ``--breakdown``, prints instead where the time of one scored cell goes: network
construction (the space's build under the seed), a plain forward, a plain forward+backward,
AZ-NAS's one pass for all four of its proxies (the Kaiming re-initialised copy included) and
ZiCo, each as a ratio to the plain forward+backward of the same network, and end-to-end cells
per second of `score_proxies` (construction included) for the AZ-NAS four and for nwot. The
AZ-NAS line is split into the shared items of one scoring context: the re-initialised copy,
the pass (forward with stage hooks, then one backward per stage) and the arithmetic on its
results (eigenvalues for expressivity/progressivity, spectral norms for trainability).

With ``--overlap N``, scores N cells of the seed-0 NB201 sample twice in the same run with the
proxies of ``--proxies``: building each network in turn, then with ``--build-workers`` processes
building the coming networks while this one scores (`nas_lib.bench.prefetch`), and prints
cells/s of both and their ratio (the scores are checked equal).
"""

from __future__ import annotations

import argparse
import copy
import functools
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from nas_lib.data.arrays import fixed_batch, load_npz_images
from nas_lib.proxies import PROXIES, ScoringContext, score_proxies
from nas_lib.space import get_space

CELLS = {
    "all-3x3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "light": "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
    "optimum": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
}
FORWARD_ONLY = {"nwot", "rbflex", "zen", "synflow", "params", "flops", "latency"}
AZ = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired(baseline: Callable[[], object], proxy: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """Median baseline seconds, median proxy seconds and median of the per-pair ratios.

    Baseline and proxy alternate, so load from other processes hits both alike; the ratio of
    each adjacent pair is what the targets are checked on.
    """
    baseline(), proxy()  # warm-up: allocator, kernels, lazy imports
    base, prox = [], []
    for _ in range(repeats):
        base.append(timed(baseline))
        prox.append(timed(proxy))
    ratios = [p / b for p, b in zip(prox, base)]
    return statistics.median(base), statistics.median(prox), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True)
    parser.add_argument("--proxies", default="nwot,rbflex,zen,synflow,snip,grad_norm,fisher,jacov,grasp")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--breakdown", action="store_true", help="time construction / forward / backward / AZ-NAS pass per cell")
    parser.add_argument("--overlap", type=int, default=0, help="cells/s over this many sampled cells, built in turn vs built ahead")
    parser.add_argument("--build-workers", type=int, default=1)
    parser.add_argument("--table", default="../shared/data/nb201/nb201_cifar10.csv", help="NB201 table to sample --overlap cells from")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = load_npz_images(args.images)
    x, y = fixed_batch(x, y, args.batch_size, 0)
    space = get_space("nb201")
    names = [n.strip() for n in args.proxies.split(",") if n.strip()]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, median of {args.repeats}")
    if args.overlap:
        overlap(space, names, (x, y), args.overlap, args.build_workers, args.table)
        return
    if args.breakdown:
        for cell in args.cells.split(","):
            breakdown(space, cell, x, y, args.repeats)
        return
    for cell in args.cells.split(","):
        torch.manual_seed(0)
        model = space.build_model(space.from_string(CELLS[cell])).train()
        print(f"\n{cell}: {CELLS[cell]}")
        print(f"  {'proxy':<10} {'proxy s':>8} {'base s':>7} {'ratio':>6}  baseline (target)")
        for name in names:
            proxy = PROXIES.get(name)()
            forward_only = name in FORWARD_ONLY
            target = 1.2 if name == "nwot" else 1.5
            if forward_only:
                base_fn = functools.partial(_forward, model, x)
            else:
                base_fn = functools.partial(_forward_backward, model, x, y)
            # the proxy gets the same built network (channels-last conversion included in its time)
            run = functools.partial(_score_copy, space, (x, y), name, proxy, model)
            copy_s = statistics.median(timed(functools.partial(copy.deepcopy, model)) for _ in range(3))
            base, prox, ratio = paired(base_fn, run, args.repeats)
            label = "forward" if forward_only else "forward+backward"
            print(f"  {name:<10} {prox - copy_s:>8.3f} {base:>7.3f} {ratio - copy_s / base:>6.2f}  {label} (<= {target})")


def breakdown(space: object, cell: str, x: torch.Tensor, y: torch.Tensor, repeats: int) -> None:
    """Prints where one cell's scoring time goes (see the module docstring)."""
    spec = space.from_string(CELLS[cell])

    def build() -> torch.nn.Module:
        torch.manual_seed(0)
        return space.build_model(spec).train()

    model = build()
    copy_s = statistics.median(timed(lambda: copy.deepcopy(model)) for _ in range(3))

    def with_ctx(names: tuple[str, ...]) -> Callable[[], object]:
        def run() -> object:
            ctx = ScoringContext(space, None, (x, y), 0, wanted=set(names), model=copy.deepcopy(model))
            return [ctx.value(PROXIES.get(n)()) for n in names]

        return run

    fb = lambda: _forward_backward(model, x, y)  # noqa: E731
    rows = {"construction": paired(fb, build, repeats), "forward": paired(fb, lambda: _forward(model, x), repeats)}
    rows["forward+backward"] = paired(fb, fb, repeats)
    rows["AZ-NAS, all four"] = _minus_copy(paired(fb, with_ctx(AZ), repeats), copy_s)
    rows["zico"] = _minus_copy(paired(fb, with_ctx(("zico",)), repeats), copy_s)
    print(f"\n{cell}: {CELLS[cell]}")
    print(f"  {'step':<18} {'s':>7} {'/ fwd+bwd':>9}")
    for label, (_base, secs, ratio) in rows.items():
        print(f"  {label:<18} {secs:>7.3f} {ratio:>9.2f}")
    ctx = ScoringContext(space, None, (x, y), 0, wanted=set(AZ), model=copy.deepcopy(model))
    for n in AZ:
        ctx.value(PROXIES.get(n)())
    split = {k: v for k, v in ctx.costs().items() if k not in ("model", "batch")}
    print("  AZ-NAS split (one context, s): " + ", ".join(f"{k} {v:.3f}" for k, v in split.items()))
    for names in (AZ, ("nwot",)):
        secs = statistics.median(timed(functools.partial(score_proxies, space, spec, list(names), (x, y), 0)) for _ in range(repeats))
        print(f"  end to end {'+'.join(n.removeprefix('az_')[:5] for n in names)}: {secs:.3f} s/cell = {1 / secs:.2f} cells/s")


def overlap(space: object, names: list[str], batch: tuple[torch.Tensor, torch.Tensor], n: int, workers: int, table: str) -> None:
    """Cells/s of `score_specs` on `n` sampled cells, networks built in turn vs built ahead."""
    from nas_lib.bench import proxies as bench
    from nas_lib.bench.prefetch import prebuilt_networks

    if any(bench.is_derived(nm) for nm in names):
        raise SystemExit("--overlap scores per network: give members, not a population/ensemble proxy")
    archs = bench.sample_archs(list(bench.load_metric_table(table, "cifar10_test_acc").index), n, 0)
    specs = [space.from_string(a) for a in archs]
    bench.score_specs(space, specs[:2], names, batch, 0)  # warm-up
    for rnd in range(2):  # two alternating rounds: load from other processes hits both arms
        start = time.perf_counter()
        inline = bench.score_specs(space, specs, names, batch, 0)
        t_inline = time.perf_counter() - start
        start = time.perf_counter()
        ahead, first = [], 0.0
        for k, (spec, model) in enumerate(prebuilt_networks(space, specs, batch, 0, workers)):
            if k == 0:
                first = time.perf_counter() - start  # worker start-up and the first build
            res = score_proxies(space, spec, names, batch, 0, model=model)
            ahead += [res[nm].value for nm in names]
        t_ahead = time.perf_counter() - start
        a = inline.set_index(["arch", "proxy"])["value"]
        want = [a[(space.to_string(sp), nm)] for sp in specs for nm in names]
        assert np.array_equal(np.array(want), np.array(ahead), equal_nan=True), "prefetched scores differ"
        steady = (n - 1) / (t_ahead - first - t_inline / n)  # cells after the first, first's scoring removed
        print(
            f"round {rnd}, {n} cells, {'+'.join(names)}: built in turn {n / t_inline:.3f} cells/s; "
            f"{workers} build worker(s) {n / t_ahead:.3f} cells/s with start-up ({first:.1f} s to the first network), "
            f"~{steady:.3f} cells/s after it; ratios {t_inline / t_ahead:.2f} / {steady * t_inline / n:.2f}",
            flush=True,
        )


def _minus_copy(row: tuple[float, float, float], copy_s: float) -> tuple[float, float, float]:
    base, secs, ratio = row
    return base, secs - copy_s, ratio - copy_s / base


def _score_copy(space: object, batch: tuple[torch.Tensor, torch.Tensor], name: str, proxy: object, model: torch.nn.Module) -> object:
    """One proxy's score on a fresh copy of ``model`` in its own context."""
    return ScoringContext(space, None, batch, 0, wanted={name}, model=copy.deepcopy(model)).value(proxy)


def _forward(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)


def _forward_backward(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = F.cross_entropy(model(x), y)
    torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)


if __name__ == "__main__":
    main()
