"""DrNAS on the NB201 supernet: Chen, Wang, Cheng, Tang & Hsieh, "DrNAS: Dirichlet Neural
Architecture Search", ICLR 2021, arXiv 2006.10355.

The op weights of each edge are a sample of Dir(beta), beta = ELU(alpha) + 1 (the paper's
positive concentration), drawn with the reparameterised ``rsample`` at every forward, so alpha
gets pathwise gradients; the val-half loss adds ``drnas_kl`` * KL(Dir(beta) || Dir(1)), the
paper's regulariser that keeps the concentration from growing without bound. First-order
bilevel updates (the paper's setting); no progressive partial channels (the supernet is small
already). Discretisation: argmax of the concentration per edge over all candidates (``none``
included, as DrNAS does on NB201).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Dirichlet, kl_divergence
from torch.nn import functional as F

from nas_lib.oneshot.darts import ArchitectureParameters
from nas_lib.oneshot.trainer import METHODS


@METHODS.register("drnas")
class DrNAS(ArchitectureParameters):
    """Dirichlet relaxation: sampled op weights, KL-regularised concentration."""

    skips_none_in_argmax: ClassVar[bool] = False

    def concentrations(self) -> list[Tensor]:
        return [F.elu(a) + 1.0 for a in self.alphas]

    def op_weights(self) -> list[Tensor]:
        return [Dirichlet(beta).rsample() for beta in self.concentrations()]

    def kl(self) -> Tensor:
        return sum(kl_divergence(Dirichlet(beta), Dirichlet(torch.ones_like(beta))) for beta in self.concentrations())  # type: ignore[return-value]

    def step(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor) -> float:
        self.arch_optimizer.zero_grad(set_to_none=True)
        (self.relaxed_loss(x_val, y_val) + self.config.drnas_kl * self.kl()).backward(inputs=self.alphas)
        self.arch_optimizer.step()
        loss = self.relaxed_loss(x_train, y_train)
        self.weight_update(loss)
        return float(loss.detach())
