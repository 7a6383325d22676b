"""Layer 2, hyperparameters: per block type, a subset of each field's choice list, given the
types layer 1 kept (hybrid space); the convolution kernels each edge may use (NB201).

Checks beyond subsets (in the hybrid view, `nas_lib.space.hybrid_views`): every block type still
allowed somewhere keeps at least one valid combination of its fields (e.g. a ViT needs a kept
qkv_dim divisible by a kept num_heads).
"""

from __future__ import annotations

from nas_lib.pruning.base import PruningLayer


class HyperparametersLayer(PruningLayer):
    name = "hyperparameters"
    task = (
        "Decide, for each block type still allowed, which values of each hyperparameter to keep "
        "(a subset of the current choice list). On NB201, decide which convolution kernels "
        "(nor_conv_1x1, nor_conv_3x3) each edge that may carry a convolution keeps."
    )
