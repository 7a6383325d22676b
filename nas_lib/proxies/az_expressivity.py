"""AZ-NAS expressivity: how evenly each stage's features spread over their channel dimensions.

Lee and Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024,
arXiv 2403.19232. For each stage output (stem, then every cell or block), the positions of all
inputs are samples of a C-dimensional feature; with the eigenvalues s of their covariance and
p = s / sum(s), the stage's expressivity is the entropy -sum p log(p + 1e-8) (isotropic
features score log C). The proxy is the sum over stages. Read from the shared AZ-NAS stage pass
(train mode, batch statistics, Kaiming fan-in initialisation and standard normal inputs, as in
the authors' NB201 code).
"""

from __future__ import annotations

import torch

from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy
from nas_lib.proxies.gradients import stage_pass
from nas_lib.proxies.stages import channel_rows

_EPS = 1e-8  # inside the log, as in the paper's implementation


def spectral_entropy(feature: torch.Tensor) -> float:
    """Entropy of the normalised eigenvalues of the channel covariance of one stage output.

    Raises:
        ValueError: if the feature is constant (its covariance has no spectrum).
    """
    x = channel_rows(feature).double()
    x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.eigvalsh(x.T @ x / x.shape[0]).clamp_min(0.0)
    total = s.sum()
    if not torch.isfinite(total) or total <= 0:
        raise ValueError("a stage's features are constant over the batch: no spectrum")
    p = s / total
    return float(-(p * torch.log(p + _EPS)).sum())


def stage_entropies(ctx: ScoringContext) -> list[float]:
    """The spectral entropy of every stage output of `ctx`'s network (computed once)."""

    def compute() -> list[float]:
        features = stage_pass(ctx).features
        if not features:
            raise ValueError("the network has no stage to read features from")
        return [spectral_entropy(f) for f in features]

    return ctx.shared("az_entropies", compute)


@register_proxy
class Expressivity(Proxy):
    """Sum over stages of the channel-spectrum entropy (higher is better)."""

    name = "az_expressivity"
    version = "3"  # 3: Gaussian inputs, as the authors' NB201 code
    higher_is_better = True
    needs = frozenset({"stage_features"})

    def compute(self, ctx: ScoringContext) -> float:
        return float(sum(stage_entropies(ctx)))
