"""AZ-NAS: the four AZ-NAS proxies assembled by fit-free rank aggregation.

Lee and Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024,
arXiv 2403.19232. Expressivity, progressivity and trainability come from one forward and one
stage-wise backward of the shared gradient pass, complexity from the same forward; within a
population the score is sum over the four of log(rank / n) (`ensemble.rank_aggregate`), which
favours networks that every proxy ranks high. No weight is fitted on any table.
"""

from __future__ import annotations

from nas_lib.proxies.base import PROXIES, Proxy, ScoringContext, register_proxy
from nas_lib.proxies.ensemble import log_percentile_sum

MEMBERS: tuple[str, ...] = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")


@register_proxy
class AZNAS(Proxy):
    """AZ-NAS aggregate (higher is better); a population is ranked by `rank_aggregate`."""

    name = "az_nas"
    version = "2"  # 2: AZ-NAS members on Gaussian inputs
    higher_is_better = True
    requires = frozenset(MEMBERS)
    population = True

    def compute(self, ctx: ScoringContext) -> float:
        return log_percentile_sum({name: ctx.value(PROXIES.get(name)()) for name in MEMBERS})
