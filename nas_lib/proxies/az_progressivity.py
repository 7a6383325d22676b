"""AZ-NAS progressivity: expressivity should grow from each stage to the next.

Lee and Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024,
arXiv 2403.19232. With e_l the expressivity (channel-spectrum entropy, see `az_expressivity`)
of stage l, the score is min over l of (e_{l+1} - e_l): a network whose features lose
expressivity at some stage scores low. Shares the per-stage entropies with `az_expressivity`.
"""

from __future__ import annotations

from nas_lib.proxies.az_expressivity import stage_entropies
from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy


@register_proxy
class Progressivity(Proxy):
    """Smallest stage-to-stage increase of expressivity (higher is better)."""

    name = "az_progressivity"
    version = "3"  # 3: Gaussian inputs, as the authors' NB201 code
    higher_is_better = True
    needs = frozenset({"stage_features"})

    def compute(self, ctx: ScoringContext) -> float:
        e = stage_entropies(ctx)
        if len(e) < 2:
            raise ValueError("progressivity needs at least two stages")
        return float(min(b - a for a, b in zip(e[:-1], e[1:])))
