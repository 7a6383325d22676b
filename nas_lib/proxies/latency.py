"""Measured latency: median wall time of an inference forward pass at batch 1, in milliseconds.

A hardware-cost proxy (lower is better), as in hardware-aware NAS benchmarks such as
HW-NAS-Bench (Li et al., ICLR 2021, arXiv 2103.10584). It is measured on the scoring device,
so it is not deterministic; BN is folded away by eval mode and no autograd state is kept.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy

WARMUP = 1
REPEATS = 5  # median of 5 damps scheduler noise on a shared machine


@register_proxy
class Latency(Proxy):
    """Median forward latency at batch 1, ms (lower is better)."""

    name = "latency"
    version = "1"
    higher_is_better = False
    deterministic = False

    def compute(self, ctx: ScoringContext) -> float:
        net = copy.deepcopy(ctx.model()).eval()
        x = ctx.batch()[0][:1]
        times = []
        with torch.inference_mode():
            for k in range(WARMUP + REPEATS):
                _sync(ctx.device)
                start = time.perf_counter()
                net(x)
                _sync(ctx.device)
                if k >= WARMUP:
                    times.append(time.perf_counter() - start)
        return 1000.0 * statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
