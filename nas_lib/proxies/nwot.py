"""NASWOT: log |det K| of the Hamming kernel of ReLU codes over a batch.

Mellor, Turner, Storkey, Crowley, "Neural Architecture Search without Training", ICML 2021,
arXiv 2006.04647. For each activation unit, an image gets code 1 if the unit is active; K_ij
sums, over all activation layers, the number of units on which images i and j agree. Networks
whose activation patterns separate the images well (K close to diagonal-dominant) score higher.

Conventions follow NASLib's `nwot` (network in train mode, codes taken at every ReLU input,
score = log|det K|). K is accumulated with one float32 0/1 product per distinct activation
input (see `activations.py`), which gives the same K as the float64 two-product form.
"""

from __future__ import annotations

import torch

from nas_lib.proxies.activations import HAMMING_CODES, activation_stats
from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy


@register_proxy
class NWOT(Proxy):
    """NASWOT score (higher is better)."""

    name = "nwot"
    version = "1"
    higher_is_better = True
    needs = frozenset({HAMMING_CODES})

    def compute(self, ctx: ScoringContext) -> float:
        stats = activation_stats(ctx)
        if stats.hamming_kernel is None:
            raise ValueError("the network has no activation module to read codes from")
        _sign, logdet = torch.linalg.slogdet(stats.hamming_kernel.cpu())
        return float(logdet)
