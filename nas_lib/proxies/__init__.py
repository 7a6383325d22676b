"""Training-free proxies: score an architecture at initialisation, without training.

`PROXIES` maps a name to a `Proxy` subclass; `get_proxy(name)` builds one. `score_proxies`
scores several proxies on one network and shares its forward/backward passes between them.
Each proxy lives in its own module and cites its paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from nas_lib.proxies.base import PROXIES, Proxy, ProxyResult, ScoringContext, register_proxy

# Importing a module registers its proxy.
from nas_lib.proxies import (  # noqa: E402,F401  isort: skip
    az_complexity,
    az_expressivity,
    az_nas,
    az_progressivity,
    az_trainability,
    ensemble,
    fisher,
    flops,
    grad_norm,
    grasp,
    jacov,
    latency,
    nwot,
    params,
    rbflex,
    snip,
    synflow,
    zen,
    zico,
)


def get_proxy(name: str) -> Proxy:
    """Builds the registered proxy `name` (KeyError listing the known names otherwise)."""
    return PROXIES.get(name)()


def score_proxies(
    space: Any,
    spec: Any,
    names: Sequence[str],
    batch: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    device: str = "cpu",
    model: torch.nn.Module | None = None,
) -> dict[str, ProxyResult]:
    """Scores `spec` with each proxy in `names`, sharing passes over one network.

    The network is built once under `torch.manual_seed(seed)`; passes that several proxies
    read (the activation forward, the cross-entropy gradients) run once. Each result's
    `seconds` is what that proxy would have cost alone.

    Args:
        space: the search space that builds `spec`.
        spec: the architecture.
        names: registered proxy names (unknown names raise KeyError before any work).
        batch: (images float32 NCHW, labels int64).
        seed: seeds weight initialisation and random inputs.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        model: the network already built by `base.build_network(space, spec, batch, seed)`
            (e.g. by a worker process ahead of time); built here when None.

    Returns:
        name -> ProxyResult, in the order of `names`; failures are results, never raised.
    """
    proxies = [get_proxy(n) for n in names]
    try:
        ctx = ScoringContext(space, spec, batch, seed, device, wanted=set(names).union(*(p.requires for p in proxies)), model=model)
    except Exception as exc:  # e.g. a malformed device string: every proxy fails alike
        return {p.name: ProxyResult.failure(exc) for p in proxies}
    return {p.name: ctx.run(p) for p in proxies}


__all__ = ["PROXIES", "Proxy", "ProxyResult", "ScoringContext", "get_proxy", "register_proxy", "score_proxies"]
