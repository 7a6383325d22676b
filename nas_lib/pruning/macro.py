"""Layer 1, macro structure: block types per stage, depth range, type shares, preferred and
forbidden type sequences (hybrid space); operation kinds per edge (NB201).

What the layer means on each space is that space's view (`nas_lib.space.hybrid_views`,
`nas_lib.space.nb201_views`). The cut it proposes is checked against the measured retention of
the best architectures (see `nas_lib.pruning.measure`) and relaxed by the guard when it drops them.
"""

from __future__ import annotations

from nas_lib.pruning.base import PruningLayer


class MacroLayer(PruningLayer):
    name = "macro"
    task = (
        "Decide the macro structure: which block types each stage (early/mid/late third of the "
        "network) may use, the depth range, optional per-type shares of the blocks, and type "
        "sequences to prefer or forbid. On NB201, decide which operation kinds (none, "
        "skip_connect, conv, avg_pool_3x3) each edge position may carry."
    )
