"""DARTS on the NB201 supernet: Liu, Simonyan & Yang, "DARTS: Differentiable Architecture
Search", ICLR 2019, arXiv 1806.09055.

Bilevel: the supernet weights follow SGD on the train half, the architecture parameters alpha
(one logit per candidate per edge, op weights = softmax) follow Adam on the val half. ``darts``
is the first-order approximation (alpha's gradient at the current weights); ``darts2`` the
second-order one (at the weights after one virtual SGD step, the Hessian-vector product by
central finite differences, as in the paper's eq. 7-8).

Discretisation: argmax of alpha per edge over the operations other than ``none`` (the DARTS
rule, as in the NB201 paper's DARTS baseline); an edge whose only candidate is ``none`` keeps it.
Known outcome on NB201: the answer drifts to parameter-free operations (the paper reports
54.30% on CIFAR-10 for both orders).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.func import functional_call

from nas_lib.data.datasets import ImageDataset
from nas_lib.oneshot.trainer import METHODS, OneShotConfig, OneShotMethod
from nas_lib.space.nb201 import NB201Arch, NB201Space


class Alphas(OneShotMethod):
    """Architecture logits (`alphas`), trained by Adam on the val half (DARTS' settings) and kept
    in the checkpoint with their optimiser."""

    def init_alphas(self, shapes: list[tuple[int, ...]]) -> None:
        c = self.config
        self.alphas = [nn.Parameter(1e-3 * torch.randn(*shape)) for shape in shapes]
        self.arch_optimizer = torch.optim.Adam(self.alphas, lr=c.arch_lr, betas=(0.5, 0.999), weight_decay=c.arch_weight_decay)

    def arch_state(self) -> dict[str, Any]:
        return {"alphas": [a.detach().clone() for a in self.alphas], "optimizer": self.arch_optimizer.state_dict()}

    def load_arch_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for a, saved in zip(self.alphas, state["alphas"], strict=True):
                a.copy_(saved)
        self.arch_optimizer.load_state_dict(state["optimizer"])


class ArchitectureParameters(Alphas):
    """A method with one logit vector per edge."""

    skips_none_in_argmax: ClassVar[bool] = True

    def __init__(self, space: NB201Space, data: ImageDataset, config: OneShotConfig) -> None:
        super().__init__(space, data, config)
        self.init_alphas([(len(ops),) for ops in space.edge_ops])

    def op_weights(self) -> list[Tensor]:
        """The per-edge op weights of the relaxation (softmax of alpha)."""
        return [a.softmax(0) for a in self.alphas]

    def answer(self) -> NB201Arch:
        ops = []
        for allowed, alpha in zip(self.space.edge_ops, self.alphas):
            scores = alpha.detach().clone()
            if self.skips_none_in_argmax and "none" in allowed and len(allowed) > 1:
                scores[allowed.index("none")] = -torch.inf
            ops.append(allowed[int(scores.argmax())])
        return NB201Arch(tuple(ops))

    def relaxed_loss(self, x: Tensor, y: Tensor) -> Tensor:
        return self.criterion(self.model(x, weights=self.op_weights()), y)


@METHODS.register("darts")
class DARTS(ArchitectureParameters):
    """First-order DARTS: alternate an alpha step on val and a weight step on train."""

    def step(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor) -> float:
        self.arch_optimizer.zero_grad(set_to_none=True)
        self.relaxed_loss(x_val, y_val).backward(inputs=self.alphas)
        self.arch_optimizer.step()
        loss = self.relaxed_loss(x_train, y_train)
        self.weight_update(loss)
        return float(loss.detach())


@METHODS.register("darts2")
class DARTSSecondOrder(ArchitectureParameters):
    """Second-order DARTS: alpha's gradient through one virtual SGD step of the weights."""

    def step(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor) -> float:
        self.arch_optimizer.zero_grad(set_to_none=True)
        grads = self._unrolled_alpha_grads(x_train, y_train, x_val, y_val)
        for a, g in zip(self.alphas, grads):
            a.grad = g
        self.arch_optimizer.step()
        loss = self.relaxed_loss(x_train, y_train)
        self.weight_update(loss)
        return float(loss.detach())

    def _unrolled_alpha_grads(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor) -> list[Tensor]:
        """d L_val(w - xi grad_w L_train(w, a), a) / d a, with xi = the current weight lr."""
        names, params = zip(*self.model.named_parameters())
        xi = self.optimizer.param_groups[0]["lr"]
        wd = self.config.weight_decay
        train_grads = torch.autograd.grad(self.relaxed_loss(x_train, y_train), params, allow_unused=True)
        unrolled = {n: (p - xi * ((g if g is not None else 0.0) + wd * p)).detach().requires_grad_() for n, p, g in zip(names, params, train_grads)}
        val_loss = self.criterion(functional_call(self.model, unrolled, (x_val,), {"weights": self.op_weights()}), y_val)
        found = torch.autograd.grad(val_loss, [*self.alphas, *unrolled.values()], allow_unused=True)
        alpha_grads = [g if g is not None else torch.zeros_like(a) for g, a in zip(found[: len(self.alphas)], self.alphas)]
        vector = [g if g is not None else torch.zeros_like(p) for g, p in zip(found[len(self.alphas) :], params)]
        hessian = self._hessian_vector(vector, x_train, y_train)
        return [g - xi * h for g, h in zip(alpha_grads, hessian)]

    def _hessian_vector(self, vector: list[Tensor], x: Tensor, y: Tensor) -> list[Tensor]:
        """(grad_a L_train(w + r v) - grad_a L_train(w - r v)) / 2r with r = 0.01 / |v|."""
        params = list(self.model.parameters())
        r = 0.01 / (torch.cat([v.flatten() for v in vector]).norm() + 1e-12)
        sides = []
        for sign in (1.0, -2.0):
            with torch.no_grad():
                for p, v in zip(params, vector):
                    p.add_(v, alpha=float(sign * r))
            sides.append(torch.autograd.grad(self.relaxed_loss(x, y), self.alphas))
        with torch.no_grad():
            for p, v in zip(params, vector):
                p.add_(v, alpha=float(r))
        return [(gp - gn) / (2 * r) for gp, gn in zip(*sides)]
