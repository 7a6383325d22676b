"""Build + forward cost of random hybrid architectures (issue 2's benchmark).

Prints the median time to build one architecture and to run one forward pass (inference mode,
batch 64, 32x32 RGB) over N uniformly sampled architectures, next to the same figures for a
fixed reference network measured in the same process (the NB201 optimum cell), as ratios.

    .venv/bin/python benchmarks/build_forward.py [--n 100] [--depth D] [--batch 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from nas_lib.space import HybridSpace, NB201Space
from nas_lib.space.stats import count_parameters

NB201_BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def time_build_forward(space, spec, batch: torch.Tensor) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    model = space.build_model(spec, tuple(batch.shape[1:]), 10).eval()
    t1 = time.perf_counter()
    with torch.inference_mode():
        model(batch)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, count_parameters(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="architectures to sample")
    parser.add_argument("--depth", type=int, default=None, help="sample only this depth (default: uniform over the space)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    batch = torch.randn(args.batch, 3, 32, 32)
    nb201 = NB201Space()
    ref_build, ref_fwd, ref_params = time_build_forward(nb201, nb201.from_string(NB201_BEST), batch)
    ref_build, ref_fwd, _ = time_build_forward(nb201, nb201.from_string(NB201_BEST), batch)  # warm

    space = HybridSpace()
    builds, forwards, params, depths = [], [], [], []
    for k in range(args.n):
        spec = space.sample(rng, depth=args.depth) if args.depth else space.sample(rng)
        b, f, p = time_build_forward(space, spec, batch)
        builds.append(b), forwards.append(f), params.append(p), depths.append(spec.depth)
        print(f"[{k + 1}/{args.n}] {space.arch_id(spec)} depth={spec.depth} params={p:,} build={b * 1e3:.0f} ms forward={f * 1e3:.0f} ms", flush=True)

    mb, mf = statistics.median(builds), statistics.median(forwards)
    print()
    print(f"threads: {torch.get_num_threads()}  batch: {args.batch}x3x32x32  architectures: {args.n} (median depth {statistics.median(depths)})")
    print(f"reference NB201 optimum ({ref_params:,} params): build {ref_build * 1e3:.1f} ms, forward {ref_fwd * 1e3:.1f} ms")
    print(f"hybrid median: build {mb * 1e3:.1f} ms ({mb / ref_build:.2f}x reference), forward {mf * 1e3:.1f} ms ({mf / ref_fwd:.2f}x reference)")
    print(f"hybrid median params: {statistics.median(params):,.0f}")


if __name__ == "__main__":
    main()
