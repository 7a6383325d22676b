"""Jacobian covariance: how decorrelated the input Jacobians of a batch are at initialisation.

Mellor, Turner, Storkey, Crowley, "Neural Architecture Search without Training", first version
(2020), arXiv 2006.04647v1; as `jacob_cov` in Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021, arXiv 2101.08134. J = d(sum of logits)/d(input) per image;
with the eigenvalues v of corrcoef(J) and k = 1e-5: score = -sum(log(v + k) + 1/(v + k)).
"""

from __future__ import annotations

import torch

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.proxies.gradients import INPUT_JACOBIAN, gradient_pass

_EPS = 1e-5  # NASLib's k


def jacobian_score(jacobians: torch.Tensor) -> float:
    """The jacov score of per-image Jacobians (N, ...)."""
    j = jacobians.reshape(jacobians.shape[0], -1).double().cpu()
    corr = torch.corrcoef(j)
    if not torch.isfinite(corr).all():
        raise ValueError("constant Jacobian rows: correlation undefined")
    v = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(v + _EPS) + 1.0 / (v + _EPS)).sum())


@register_proxy
class JacobCov(Proxy):
    """Jacobian covariance score (higher is better)."""

    name = "jacov"
    version = "1"
    higher_is_better = True
    needs = frozenset({INPUT_JACOBIAN})

    def compute(self, ctx: ScoringContext) -> float:
        g = gradient_pass(ctx)
        return jacobian_score(g.get(INPUT_JACOBIAN))
