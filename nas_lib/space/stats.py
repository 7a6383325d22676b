"""Parameter count and FLOPs of a model, measured (not hand-counted).

Counting rule (the one of `torch.utils.flop_counter`): a multiply-accumulate is 2 FLOPs, and only
matrix products, convolutions and attention are counted (norms, activations, softmax, the
element-wise parts of the Mamba scan and the optimiser step are not). Two gaps of the stock
counter are filled here:

- attention on CPU: torch registers only its CUDA attention kernels, so a ViT block's QK^T and
  AV products counted 0 on CPU; the CPU flash-attention kernel and its backward are mapped to the
  same formulas as the CUDA ones;
- the weight gradient of a grouped convolution: the stock formula ignores ``groups`` and counts
  it ``groups`` times over (64x for a 64-channel depthwise convolution); here it costs what the
  forward convolution costs, as for any convolution.

Backward of a matrix product counts 2x its forward (the gradients of both operands; 1x when one
operand needs no gradient, as for the input image); backward of attention counts 2.5x its
forward, because the flash kernel recomputes the scores.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, sdpa_backward_flop_count, sdpa_flop_count


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _cpu_attention(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward(grad_out: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


def _conv_backward(
    grad_out: Any, x: Any, w: Any, _bias: Any, _stride: Any, _padding: Any, _dilation: Any, transposed: bool, *rest: Any, **kwargs: Any
) -> int:
    """Input gradient as a transposed convolution; weight gradient at the forward's cost (``rest[2]``: which gradients)."""
    output_mask = rest[2]
    flops = conv_flop_count(list(grad_out), list(w), list(x), not transposed) if output_mask[0] else 0
    return flops + (conv_flop_count(list(x), list(w), list(grad_out), transposed) if output_mask[1] else 0)


def _counter() -> FlopCounterMode:
    """A counter with the CPU attention kernels and the grouped-convolution backward fixed.

    Custom entries receive the shapes of the op's tensors, like torch's own formulas.
    """
    aten = torch.ops.aten
    mapping = {
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
        aten.convolution_backward: _conv_backward,
    }
    return FlopCounterMode(display=False, custom_mapping=mapping)


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """FLOPs of one forward pass on one image (eval mode), attention included."""
    was_training = model.training
    model.eval()
    with _counter() as counter:
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    return int(counter.get_total_flops())


def count_training_flops(model: nn.Module, input_shape: tuple[int, int, int], batch_size: int) -> int:
    """FLOPs of one training step's forward and backward on ``batch_size`` images (train mode).

    Runs on a copy of ``model``, so its weights, gradients and batch-norm statistics stay as they
    were. The optimiser step and the loss are not counted (both are element-wise).
    """
    net = copy.deepcopy(model).cpu().train()
    with _counter() as counter:
        net(torch.zeros(batch_size, *input_shape)).sum().backward()
    return int(counter.get_total_flops())
