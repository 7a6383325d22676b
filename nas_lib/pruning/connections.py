"""Layer 3, connections: the connection types (sequential, residual, parallel) allowed per
stage and per pair of consecutive block types, given layer 2's space (hybrid); whether each
NB201 edge may stay an identity (skip_connect) or be absent (none).

What the layer means on each space is that space's view (`nas_lib.space.hybrid_views`,
`nas_lib.space.nb201_views`).
"""

from __future__ import annotations

from nas_lib.pruning.base import PruningLayer


class ConnectionsLayer(PruningLayer):
    name = "connections"
    task = (
        "Decide the connection types (sequential, residual, parallel) allowed in each stage and "
        "for each pair of consecutive block types ('prev->cur'). On NB201, decide for each edge "
        "whether it may remain an identity (skip_connect) or be absent (none)."
    )
