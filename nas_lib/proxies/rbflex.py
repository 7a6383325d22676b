"""RBFleX-NAS: RBF kernels over the activation outputs and the last layer's input of a batch.

Yamasaki, Wang, Luo, Chen, Feng, Kang, Chen, "RBFleX-NAS: Training-Free Neural Architecture
Search Using Radial Basis Function Kernel and Hyperparameter Detection", IEEE TNNLS 2025,
arXiv 2503.22733. Per image, X = all activation outputs and Q = the input of the final linear
layer; each is min-max normalised per unit over the batch; K = exp(-gamma_k ||x_i - x_j||^2),
L = exp(-gamma_q ||q_i - q_j||^2); score = N * log|det(K o L)| (Hadamard product).

Gamma comes from the paper's hyperparameter detection rule: for every pair of images, with m
and s^2 the mean and variance of an image's raw feature vector, gamma_ij = (m_i - m_j)^2 /
(2 (s_i^2 + s_j^2)); gamma = the smallest candidate. The paper detects gamma once on a few
networks and keeps it for the search; here it is detected on each network's own batch, so the
score needs no calibration step (version string says so).
"""

from __future__ import annotations

import torch

from nas_lib.proxies.activations import activation_stats
from nas_lib.proxies.base import Proxy, ScoringContext, register_proxy


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


@register_proxy
class RBFleX(Proxy):
    """RBFleX-NAS score (higher is better)."""

    name = "rbflex"
    version = "1-per-network-gamma"
    higher_is_better = True

    def compute(self, ctx: ScoringContext) -> float:
        stats = activation_stats(ctx)
        if stats.gram is None or stats.last_input is None:
            raise ValueError("rbflex needs activation modules and a final linear layer")
        n = stats.gram.shape[0]
        mean = stats.raw_sum / stats.raw_count
        var = stats.raw_sumsq / stats.raw_count - mean**2
        kernel_k = torch.exp(-detect_gamma(mean, var) * sq_distances(stats.gram, stats.sq_norms))
        q = stats.last_input
        lo, hi = q.amin(0, keepdim=True), q.amax(0, keepdim=True)
        qn = (q - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        gamma_q = detect_gamma(q.mean(1), q.var(1, unbiased=False))
        kernel_q = torch.exp(-gamma_q * sq_distances(qn @ qn.T, (qn * qn).sum(1)))
        _sign, logdet = torch.linalg.slogdet((kernel_k * kernel_q).cpu())
        return float(n * logdet)
