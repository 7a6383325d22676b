"""RBFleX-NAS: RBF kernels over the activation outputs and the last layer's input of a batch.

Yamasaki, Wang, Luo, Chen, Feng, Kang, Chen, "RBFleX-NAS: Training-Free Neural Architecture
Search Using Radial Basis Function Kernel and Hyperparameter Detection", IEEE TNNLS 2025,
arXiv 2503.22733. Per image, X = all activation outputs and Q = the input of the final linear
layer; each is min-max normalised per unit over the batch; K = exp(-gamma_k ||x_i - x_j||^2),
L = exp(-gamma_q ||q_i - q_j||^2); score = N * log|det(K o L)| (Hadamard product).

Gamma comes from the paper's hyperparameter detection rule (HDA): for every pair among the
first 3 images, with m and s^2 the mean and variance of an image's raw feature vector,
gamma_ij = (m_i - m_j)^2 / (2 (s_i^2 + s_j^2)); gamma = the smallest candidate over the pairs of
a few random networks. As in the paper, gamma is detected once per search space and then kept
fixed, so scores of different networks share one kernel width: `CALIBRATED_GAMMAS` holds the
values `calibrate_gammas` detected on 10 random NB201 cells (`NB201Space().sample` with
numpy seed 0, network seed 0, first 3 images of the seed-0 64-image CIFAR-10 batch). A space without calibrated gammas falls back to detecting them on the
scored network itself (measured on 40 NB201 cells: Spearman 0.46 per-network vs 0.68 fixed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from nas_lib.proxies.activations import RBF_TERMS, ActivationStats, activation_stats
from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy

DETECT_IMAGES = 3  # the paper's batch for gamma detection
CALIBRATION_QUANTILE = 0.25
# space name -> (gamma_k, gamma_q), from calibrate_gammas (see the module docstring)
CALIBRATED_GAMMAS: dict[str, tuple[float, float]] = {"nb201": (1.9208875892218202e-04, 1.3157213106751442e-03)}


def detect_gamma(mean: torch.Tensor, var: torch.Tensor) -> float:
    """The detection rule: min over image pairs of (m_i - m_j)^2 / (2 (s_i^2 + s_j^2))."""
    num = (mean[:, None] - mean[None, :]) ** 2
    den = 2.0 * (var[:, None] + var[None, :])
    upper = torch.triu(torch.ones_like(num, dtype=torch.bool), diagonal=1) & (den > 0)
    candidates = num[upper] / den[upper]
    candidates = candidates[candidates > 0]
    if candidates.numel() == 0:
        raise ValueError("no image pair separates the features: gamma undefined")
    return float(candidates.min())


def sq_distances(gram: torch.Tensor, sq: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances from a Gram matrix and its diagonal."""
    return (sq[:, None] + sq[None, :] - 2.0 * gram).clamp_min(0.0)


def _normalised(q: torch.Tensor) -> torch.Tensor:
    lo, hi = q.amin(0, keepdim=True), q.amax(0, keepdim=True)
    return (q - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))


def network_gammas(stats: ActivationStats, images: int = DETECT_IMAGES) -> tuple[float, float]:
    """(gamma_k, gamma_q) detected on the first `images` images of one network's pass."""
    raw_sum, raw_sumsq, q = stats.raw_sum, stats.raw_sumsq, stats.last_input
    if raw_sum is None or raw_sumsq is None or q is None:
        raise ValueError("rbflex needs activation modules and a final linear layer")
    mean = raw_sum / stats.raw_count
    var = raw_sumsq / stats.raw_count - mean**2
    return (detect_gamma(mean[:images], var[:images]), detect_gamma(q.mean(1)[:images], q.var(1, unbiased=False)[:images]))


def calibrate_gammas(
    space: Any, specs: Sequence[Any], batch: tuple[torch.Tensor, torch.Tensor], seed: int, device: str = "cpu", quantile: float = CALIBRATION_QUANTILE
) -> tuple[float, float]:
    """The paper's detection over several networks, taking a low quantile of the per-network
    gammas instead of their minimum (one degenerate cell, e.g. with all-zero features, sets
    the minimum orders of magnitude lower than every other network's)."""
    found = []
    for spec in specs:
        ctx = ScoringContext(space, spec, batch, seed, device, wanted={"rbflex"})
        found.append(network_gammas(activation_stats(ctx)))
    ks, qs = torch.tensor([g[0] for g in found]), torch.tensor([g[1] for g in found])
    return float(torch.quantile(ks, quantile)), float(torch.quantile(qs, quantile))


@register_proxy
class RBFleX(Proxy):
    """RBFleX-NAS score (higher is better).

    Args:
        gammas: fixed (gamma_k, gamma_q); default: the space's calibrated values, else detected
            on the scored network.
    """

    name = "rbflex"
    version = "2-fixed-gamma"
    higher_is_better = True
    needs = frozenset({RBF_TERMS})

    def __init__(self, gammas: tuple[float, float] | None = None) -> None:
        self.gammas = gammas

    def compute(self, ctx: ScoringContext) -> float:
        stats = activation_stats(ctx)
        if stats.gram is None or stats.sq_norms is None or stats.last_input is None:
            raise ValueError("rbflex needs activation modules and a final linear layer")
        gamma_k, gamma_q = self.gammas or CALIBRATED_GAMMAS.get(getattr(ctx.space, "name", ""), None) or network_gammas(stats)
        n = stats.gram.shape[0]
        kernel_k = torch.exp(-gamma_k * sq_distances(stats.gram, stats.sq_norms))
        qn = _normalised(stats.last_input)
        kernel_q = torch.exp(-gamma_q * sq_distances(qn @ qn.T, (qn * qn).sum(1)))
        _sign, logdet = torch.linalg.slogdet((kernel_k * kernel_q).cpu())
        return float(n * logdet)
