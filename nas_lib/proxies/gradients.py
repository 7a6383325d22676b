"""The shared backward pass over a real batch that gradient proxies read.

One train-mode forward of the batch, then what the asked proxies declare in `Proxy.needs`:
- ``INPUT_JACOBIAN``: the input Jacobian of the summed logits (jacov), with the graph kept for
- ``WEIGHT_GRADS``: the cross-entropy gradients of every Conv2d/Linear weight (snip, grad_norm)
  and ``ACTIVATION_GRADS``: those of every Conv2d/Linear output (fisher), taken in the same
  `autograd.grad` call.
A new gradient proxy declares what it reads and needs no edit here; reading an item nobody
declared raises (`GradientPass.get`). No `.grad` is written into the shared model, so the
passes cannot leak into each other.

`stage_pass` is AZ-NAS's pass (one forward with hooks on every stage, then one backward per
stage from a random sign gradient), on the network re-initialised as that paper does and on
standard normal inputs of the batch's shape, as its NB201 code does (images are not read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas_lib.proxies.base import ScoringContext
from nas_lib.proxies.stages import (
    StageCapture,
    kaiming_fan_in_init,
    stage_cross_gradients,
)

# what a proxy can declare in `Proxy.needs` to get it from the shared gradient pass
INPUT_JACOBIAN = "input_jacobian"
WEIGHT_GRADS = "weight_grads"
ACTIVATION_GRADS = "activation_grads"
GRADIENT_NEEDS = frozenset({INPUT_JACOBIAN, WEIGHT_GRADS, ACTIVATION_GRADS})

PrunableLayer = nn.Conv2d | nn.Linear  # the layers zero-cost measures are taken at


def prunable_layers(model: nn.Module) -> list[PrunableLayer]:
    """The Conv2d and Linear layers: where NASLib's zero-cost measures are taken."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@dataclass
class GradientPass:
    """What one forward/backward of the batch yields.

    Attributes:
        layers: the Conv2d/Linear layers, in module order.
        weight_grads: dL/dW per layer (None for a layer outside the graph), or None if unasked.
        activations: each layer's output, detached, or None if unasked.
        activation_grads: dL/d(output) per layer, or None if unasked.
        input_jacobian: d(sum of logits)/d(input), (N, C, H, W), or None if unasked.
    """

    layers: list[PrunableLayer]
    weight_grads: list[torch.Tensor | None] | None = None
    activations: list[torch.Tensor | None] | None = None
    activation_grads: list[torch.Tensor | None] | None = None
    input_jacobian: torch.Tensor | None = None

    def get(self, item: str) -> Any:
        """The pass's `item` (one of `GRADIENT_NEEDS`; ``activation_grads`` gives the pair
        (activations, activation_grads)).

        Raises:
            ValueError: if the item was not computed because no asked proxy declared it.
        """
        if item not in GRADIENT_NEEDS:
            raise KeyError(f"unknown gradient-pass item {item!r}; known: {sorted(GRADIENT_NEEDS)}")
        value = (self.activations, self.activation_grads) if item == ACTIVATION_GRADS else getattr(self, item)
        if value is None or (item == ACTIVATION_GRADS and value[1] is None):
            raise ValueError(f"the gradient pass did not compute {item!r}: the proxy reading it must list it in `needs`")
        return value


def gradient_pass(ctx: ScoringContext) -> GradientPass:
    """The shared gradient pass of `ctx` (computed once, for every proxy in `ctx.wanted`)."""
    return ctx.shared("gradients", lambda: _gradient_pass(ctx))


def _gradient_pass(ctx: ScoringContext) -> GradientPass:
    needs = ctx.needs & GRADIENT_NEEDS or GRADIENT_NEEDS  # nothing declared: compute everything
    want_jac, want_w, want_act = INPUT_JACOBIAN in needs, WEIGHT_GRADS in needs, ACTIVATION_GRADS in needs
    model = ctx.model()
    x, y = ctx.batch()
    layers = prunable_layers(model)
    outputs: dict[int, torch.Tensor] = {}

    def keep_output(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        outputs[id(module)] = out

    handles = [m.register_forward_hook(keep_output) for m in layers] if want_act else []
    try:
        inp = x.clone().requires_grad_(want_jac)
        logits = model(inp)
    finally:
        for h in handles:
            h.remove()
    result = GradientPass(layers=layers)
    if want_jac:
        (result.input_jacobian,) = torch.autograd.grad(logits.sum(), inp, retain_graph=want_w or want_act)
    if want_w or want_act:
        _loss_grads(result, F.cross_entropy(logits, y), [outputs.get(id(m)) for m in layers], want_w, want_act)
    return result


def _loss_grads(result: GradientPass, loss: torch.Tensor, acts: list[torch.Tensor | None], want_w: bool, want_act: bool) -> None:
    targets: list[torch.Tensor] = []
    if want_w:
        targets += [m.weight for m in result.layers]
    act_slots = [a for a in acts if a is not None] if want_act else []
    grads = torch.autograd.grad(loss, targets + act_slots, allow_unused=True)
    k = 0
    if want_w:
        result.weight_grads = list(grads[: len(result.layers)])
        k = len(result.layers)
    if want_act:
        it = iter(grads[k:])
        result.activation_grads = [next(it) if a is not None else None for a in acts]
        result.activations = [a.detach() if a is not None else None for a in acts]


@dataclass
class StagePass:
    """What AZ-NAS's one forward and stage-wise backward yield (see `stages.py`).

    Attributes:
        features: each stage's output, detached.
        cross: per consecutive pair of stages, E[g_in g_out^T] (None for an identity stage),
            or None if unasked.
        macs: Conv2d/Linear multiply-adds per image.
    """

    features: list[torch.Tensor]
    cross: list[torch.Tensor | None] | None
    macs: float


def stage_pass(ctx: ScoringContext) -> StagePass:
    """The shared AZ-NAS pass of `ctx` (computed once for the four AZ-NAS proxies).

    It runs on the network re-initialised as the paper does (Kaiming normal, fan-in), a copy
    of the shared one, so the other proxies keep their initialisation, and on the seeded
    Gaussian batch (`ScoringContext.gaussian_batch`): the authors' NB201 search passes no data
    loader to AZ-NAS (only ZiCo, SNIP, GraSP, TE-NAS and GradSign read images there), and on
    80 NB201 cells the Gaussian input lifted progressivity's rho from 0.26 to 0.69.
    """
    return ctx.shared("stage_pass", lambda: _stage_pass(ctx))


def _stage_pass(ctx: ScoringContext) -> StagePass:
    model = ctx.reinitialised_model("kaiming_fan_in", kaiming_fan_in_init)
    x = ctx.gaussian_batch()  # the authors' NB201 code scores AZ-NAS on Gaussian inputs, not images
    want_cross = "stage_jacobians" in ctx.needs or not ctx.needs
    capture = StageCapture(model, features=True, macs=True)
    try:
        with torch.set_grad_enabled(want_cross):
            logits = model(x)
    finally:
        capture.remove()
    if not torch.isfinite(logits).all():  # a network that yields NaN/inf is broken
        raise FloatingPointError("the network's output is not finite")
    cross = stage_cross_gradients(capture.features, ctx.seed) if want_cross else None
    return StagePass([f.detach() for f in capture.features], cross, capture.macs)
