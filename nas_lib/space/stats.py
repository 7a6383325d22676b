"""Parameter count and FLOPs of a model, measured (not hand-counted)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """FLOPs of one forward pass on one image, from `torch.utils.flop_counter`."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    return int(counter.get_total_flops())
