"""Three measured pruning layers that narrow a search space before the search runs.

Layers, in the order `nas_lib.pruning.run.LAYER_REGISTRY` registers them (`LAYERS`): ``macro``
(block types per stage, depth, type shares and sequences), ``hyperparameters`` (per-type subsets
of the choice lists), ``connections`` (connection types per stage and per block-type pair). Each reads the knowledge base and the
earlier layers' decisions, returns schema-validated JSON from a provider (``offline``: proxy-guided
enrichment plus knowledge rules; ``openai``: an LLM), and is measured: exact size before and
after, and the share of the unpruned space's top 1% / top 5% that survives. A guard relaxes any
cut whose top-1% retention falls below the floor.

Example:
    >>> from nas_lib.pruning import MeasureConfig, run_all_layers
    >>> outcomes = run_all_layers(space, None, provider="offline", settings=None,
    ...                           measure=MeasureConfig(score_fn=my_proxy))
    >>> outcomes[-1].space   # the pruned space; outcomes[i].record is a pruning.parquet row
"""

from __future__ import annotations

from nas_lib.pruning.base import GroupDecision, LayerOutcome, MeasureConfig, Proposal, PruningLayer
from nas_lib.pruning.measure import Reference, draw_reference, retention, table_score_fn
from nas_lib.pruning.offline import propose_offline
from nas_lib.pruning.openai_provider import propose_openai
from nas_lib.pruning.record import PRUNING_SCHEMA
from nas_lib.pruning.run import LAYER_REGISTRY, LAYERS, PROVIDERS, run_all_layers, run_layer
from nas_lib.space.hybrid_views import HybridMacroDecision  # the hybrid macro layer's schema, re-exported

PROVIDERS.add("offline", propose_offline)
PROVIDERS.add("openai", propose_openai)

__all__ = [
    "LAYERS",
    "LAYER_REGISTRY",
    "PROVIDERS",
    "PRUNING_SCHEMA",
    "MeasureConfig",
    "LayerOutcome",
    "Proposal",
    "PruningLayer",
    "GroupDecision",
    "HybridMacroDecision",
    "Reference",
    "run_layer",
    "run_all_layers",
    "draw_reference",
    "retention",
    "table_score_fn",
]
