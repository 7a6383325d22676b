"""AZ-NAS trainability: each stage's Jacobian should have a spectral norm close to 1.

Lee and Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024,
arXiv 2403.19232. For every stage, a Rademacher gradient g_out at its output is propagated back
through that stage alone to g_in at its input; M = E[g_in g_out^T] over positions (the input
grid folded onto the output's for strided stages) estimates the stage Jacobian. With sigma its
largest singular value the stage scores -sigma - 1/sigma + 2 (0 at sigma = 1, negative
otherwise); the proxy is the mean over stages. A stage that is the identity scores -inf, as in
the paper's implementation, so the whole score fails (ranked last). One backward per stage,
on the graph of the shared gradient pass.
"""

from __future__ import annotations

import math

import torch

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.proxies.gradients import stage_pass

_EPS = 1e-6  # in 1 / (sigma + eps), as in the paper's implementation


def stage_score(cross: torch.Tensor | None) -> float:
    """-sigma - 1/sigma + 2 of one stage's M (-inf for an identity stage)."""
    if cross is None:
        return -math.inf
    sigma = float(torch.linalg.matrix_norm(cross, ord=2))
    return -sigma - 1.0 / (sigma + _EPS) + 2.0


@register_proxy
class Trainability(Proxy):
    """Mean over stages of -sigma - 1/sigma + 2 (higher is better)."""

    name = "az_trainability"
    version = "3"  # 3: Gaussian inputs, as the authors' NB201 code
    higher_is_better = True
    needs = frozenset({"stage_jacobians"})

    def compute(self, ctx: ScoringContext) -> float:
        crosses = stage_pass(ctx).cross
        if not crosses:
            raise ValueError("trainability needs at least two stages")
        return float(sum(stage_score(c) for c in crosses) / len(crosses))
