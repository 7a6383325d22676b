"""Summary features of a hybrid architecture for the learned predictor.

The hybrid code has one slot per block position, so on a variable-depth space the same fact
("two ViT blocks, one of them residual") lands on different digits in different networks. These
position-free aggregates give a tree something it can split on with a few dozen rows: depth,
blocks per family, per connection and per family x connection, blocks per family in each stage
(thirds of the depth, as `nas_lib.space.constraints.stage_of`), the mean of each family's
hyperparameters (NaN when the family is absent) and the number of blocks that halve the map.
"""

from __future__ import annotations

import math
from typing import Any

from nas_lib.blocks import BLOCKS
from nas_lib.predictor.features import SUMMARIES
from nas_lib.space.base import SearchSpace
from nas_lib.space.constraints import CONNECTIONS, STAGES, block_types, stage_of


@SUMMARIES.register("hybrid")
def hybrid_summary(space: SearchSpace, spec: Any) -> dict[str, float]:
    """Position-free aggregates of a `HybridArch` (names stable for a given block registry)."""
    blocks = spec.blocks
    depth = len(blocks)
    types = block_types()
    out: dict[str, float] = {"depth": float(depth)}
    for t in types:
        out[f"n_{t}"] = float(sum(b.type == t for b in blocks))
    for c in CONNECTIONS:
        out[f"n_{c}"] = float(sum(b.connection == c for b in blocks))
    for t in types:
        for c in CONNECTIONS:
            out[f"n_{t}_{c}"] = float(sum(b.type == t and b.connection == c for b in blocks))
    for stage in STAGES:
        for t in types:
            out[f"n_{stage}_{t}"] = float(sum(b.type == t and stage_of(i, depth) == stage for i, b in enumerate(blocks)))
    for t in types:
        own = [b.p for b in blocks if b.type == t]
        for name in BLOCKS.get(t).field_names:
            out[f"mean_{t}_{name}"] = sum(p[name] for p in own) / len(own) if own else math.nan
    out["n_downsample"] = float(sum(b.p.get("stride", 1) > 1 for b in blocks))
    return out
