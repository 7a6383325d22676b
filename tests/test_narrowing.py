"""The space side of pruning: each space's layer views, state keys, spread draws and score keys,
and a new pruning layer added as one module plus one registration."""

from __future__ import annotations

import numpy as np
import pytest

from nas_lib.pruning import LAYER_REGISTRY, LAYERS, MeasureConfig, PruningLayer, run_layer
from nas_lib.pruning.groups import decision_problems, no_cut
from nas_lib.space import SPACES, HybridSpace, NB201Space, get_space
from nas_lib.space.narrowing import GroupDecision, Groups, LayerView
from nas_lib.space.nb201 import OPS, NB201Arch
from nas_lib.space.nb201_views import edge_index, edge_key, restrict_edges
from nas_lib.space.sampled import SampledSpace


@pytest.fixture(scope="module")
def spaces() -> dict[str, object]:
    return {name: get_space(name) for name in SPACES.names()}


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("space_name", SPACES.names())
def test_every_registered_space_has_a_view_of_every_layer(layer: str, space_name: str, spaces: dict) -> None:
    space = spaces[space_name]
    view = space.prune_view(layer)
    groups = view.groups()
    assert groups and all(isinstance(options, tuple) and options for options in groups.values())
    spec = space.sample(np.random.default_rng(1))
    used = view.features(spec)
    assert set(used) <= set(groups)
    assert all(option in groups[key] for key, options in used.items() for option in options)
    assert view.apply(view.decision_model()).size() == space.size()  # keeping everything changes nothing


def test_a_space_without_a_view_names_the_layers_it_supports() -> None:
    with pytest.raises(KeyError, match="unknown NB201Space pruning view 'width'; known: connections, hyperparameters, macro"):
        NB201Space().prune_view("width")
    sample = SampledSpace(NB201Space(), ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
    with pytest.raises(KeyError, match=r"unknown SampledSpace pruning view 'macro'; known: \(none\)"):
        sample.prune_view("macro")


def test_state_keys_identify_what_a_space_allows() -> None:
    nb = NB201Space()
    assert nb.state_key() == NB201Space().state_key()
    assert nb.state_key() != nb.restrict([OPS, OPS, OPS, ("skip_connect",), OPS, OPS]).state_key()
    hybrid = HybridSpace()
    assert hybrid.state_key() == HybridSpace().state_key()
    assert hybrid.state_key() != HybridSpace(hybrid.constraints.narrowed(max_depth=8)).state_key()
    cells = ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
    assert SampledSpace(nb, cells).state_key() == SampledSpace(nb, cells[::-1]).state_key() != SampledSpace(nb, cells[:1]).state_key()


def test_spread_draws_cover_the_hybrid_depths_and_are_uniform_on_nb201() -> None:
    hybrid = HybridSpace(HybridSpace().constraints.narrowed(min_depth=4, max_depth=12))
    depths = {spec.depth for spec in hybrid.spread_sample(200, np.random.default_rng(0))}
    assert depths == set(range(4, 13))  # uniform draws would be almost all of depth 12
    nb, rng_a, rng_b = NB201Space(), np.random.default_rng(3), np.random.default_rng(3)
    assert nb.spread_sample(5, rng_a) == [nb.sample(rng_b) for _ in range(5)]


def test_nb201_cells_share_a_params_key_by_their_convolution_counts() -> None:
    nb = NB201Space()
    a = NB201Arch(("nor_conv_3x3", "none", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none"))
    b = NB201Arch(("none", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "none", "nor_conv_3x3"))
    assert nb.score_key("params", a) == nb.score_key("params", b) == ("convs", 1, 1)
    assert nb.score_key("nwot", a) == a and HybridSpace().score_key("params", "spec") == "spec"


# -- a new layer: one module (a layer and its view) plus one registration ---------------------------
class EdgeOpsView(LayerView):
    """Toy NB201 view of a new layer: the operations each edge keeps."""

    def groups(self) -> Groups:
        return {edge_key(k): ops for k, ops in enumerate(self.space.edge_ops)}

    def features(self, spec) -> dict:
        return {edge_key(k): [op] for k, op in enumerate(spec.ops)}

    def apply(self, decision: GroupDecision) -> NB201Space:
        return restrict_edges(self.space, {edge_index(k): {str(op) for op in kept} for k, kept in decision.keep.items()})


class EdgeOpsLayer(PruningLayer):
    name = "edge_ops"
    task = "Decide which operations each edge keeps."


def test_a_new_layer_runs_through_the_generic_machinery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(NB201Space.prune_views._items, "edge_ops", EdgeOpsView)  # its view of NB201
    monkeypatch.setitem(LAYER_REGISTRY._items, "edge_ops", EdgeOpsLayer)  # the one registry line
    space, layer = NB201Space(), EdgeOpsLayer()
    emptied = GroupDecision(keep={"edge0": []})
    assert decision_problems(layer, space, emptied) == [
        "edge0: keeps no option (keep at least one of ['none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3'])"
    ]
    assert decision_problems(layer, space, no_cut(layer, space)) == []
    no_pool = lambda spec: float("avg_pool_3x3" not in spec.ops)  # noqa: E731
    outcome = run_layer("edge_ops", space, None, provider="offline", settings=None, measure=MeasureConfig(score_fn=no_pool, offline_samples=300))
    assert outcome.layer == "edge_ops" and outcome.record["layer"] == "edge_ops"
    assert all("avg_pool_3x3" not in ops for ops in outcome.space.edge_ops)  # depleted among the best
    assert outcome.record["top1pct_retention"] == pytest.approx(1.0)
    with pytest.raises(KeyError, match="unknown HybridSpace pruning view 'edge_ops'"):
        run_layer("edge_ops", HybridSpace(), None, provider="offline", settings=None, measure=MeasureConfig())
