"""Proxy cost against a plain pass of the same network and batch, measured in one process.

For each NB201 cell below and each proxy, prints the median wall time of the proxy (network
already built, as it is for the baseline) and its ratio to the baseline: a plain forward
(`model(x)` under no_grad, train mode as built) for forward-only proxies, a plain
forward+backward (cross-entropy, gradients of all weights) for gradient proxies. Targets:
nwot <= 1.2x forward, other forward-only proxies <= 1.5x forward, gradient proxies <= 1.5x
forward+backward.

    .venv/bin/python benchmarks/proxy_speed.py --images ../shared/data/cifar10_train1000.npz \
        [--proxies nwot,synflow] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nas_lib.data.arrays import fixed_batch, load_npz_images
from nas_lib.proxies import PROXIES, ScoringContext
from nas_lib.space import get_space

CELLS = {
    "all-3x3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "light": "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
    "optimum": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
}
FORWARD_ONLY = {"nwot", "rbflex", "zen", "synflow", "params", "flops", "latency"}


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocator, kernels, lazy imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True)
    parser.add_argument("--proxies", default="nwot,rbflex,zen,synflow,snip,grad_norm,fisher,jacov,grasp")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--cells", default=",".join(CELLS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = load_npz_images(args.images)
    x, y = fixed_batch(x, y, args.batch_size, 0)
    space = get_space("nb201")
    names = [n.strip() for n in args.proxies.split(",") if n.strip()]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, median of {args.repeats}")
    for cell in args.cells.split(","):
        torch.manual_seed(0)
        model = space.build_model(space.from_string(CELLS[cell])).train()
        forward = median_time(lambda: _forward(model, x), args.repeats)
        fwd_bwd = median_time(lambda: _forward_backward(model, x, y), args.repeats)
        print(f"\n{cell}: forward {forward:.3f} s, forward+backward {fwd_bwd:.3f} s")
        print(f"  {'proxy':<10} {'seconds':>8} {'ratio':>6}  baseline")
        for name in names:
            proxy = PROXIES.get(name)()
            seconds = median_time(lambda: ScoringContext(space, None, (x, y), 0, wanted={name}, model=model).value(proxy), args.repeats)
            base, label = (forward, "forward") if name in FORWARD_ONLY else (fwd_bwd, "forward+backward")
            print(f"  {name:<10} {seconds:>8.3f} {seconds / base:>6.2f}  {label}")


def _forward(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)


def _forward_backward(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    loss = F.cross_entropy(model(x), y)
    torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)


if __name__ == "__main__":
    main()
