"""The hybrid space's supernet: a subnet is the network the pipeline builds, with sliced weights;
`hybrid_spos` trains, checkpoints and resumes; the `spos` strategy hands out its ranking in the
pipeline's search (tiny scale, seconds; the pipeline run is marked slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from nas_lib.blocks.mamba import MambaBlock
from nas_lib.blocks.vit import WindowAttentionBlock
from nas_lib.data.datasets import ImageDataset, load_dataset
from nas_lib.oneshot import METHODS, OneShotConfig, inherited_accuracy, train_supernet
from nas_lib.oneshot.hybrid import HybridGDAS
from nas_lib.oneshot.hybrid_supernet import HybridSupernet, Position, extreme
from nas_lib.search import check_options, make_strategy, strategy_class, strategy_names
from nas_lib.space import HybridConstraints
from nas_lib.space.builder import ConnectedBlock, HybridNetwork
from nas_lib.space.constraints import CONNECTIONS
from nas_lib.space.hybrid import HybridArch, HybridSpace

torch.set_num_threads(1)

SMALL = {
    "min_depth": 4,
    "max_depth": 5,
    "hyperparameters": {
        "cnn": {"planes": [16, 32], "base_width": [32, 64], "cardinality": [1, 2, 4]},
        "vit": {"qkv_dim": [192, 256], "mlp_ratio": [4, 6], "num_heads": [3, 4]},
        "mamba": {"expand": [1, 2], "d_state": [8, 16]},
    },
}


def small_space() -> HybridSpace:
    return HybridSpace(HybridConstraints.from_dict(SMALL))


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    """120 of scikit-learn's 8x8 digits, split 60/60 (no download, no shared data)."""
    return load_dataset("digits", max_items=120, val_fraction=0.5, seed=0)


def _copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    assert dst.shape == src.shape, (dst.shape, src.shape)
    dst.data.copy_(src.detach())


def _copy_bn(dst: nn.BatchNorm2d | nn.LayerNorm, src: nn.Module) -> None:
    n = dst.weight.shape[0]
    for name in ("weight", "bias", "running_mean", "running_var"):
        if getattr(dst, name, None) is not None:
            _copy(getattr(dst, name), getattr(src, name)[:n])


def _load_slices(net: HybridNetwork, supernet: HybridSupernet, arch: HybridArch) -> None:
    """Copies the supernet's slices for `arch` into the standalone network the builder makes."""
    net.stem.load_state_dict(supernet.stem.state_dict())
    for built, position, block in zip(net.blocks, supernet.positions, arch.blocks, strict=False):
        assert isinstance(built, ConnectedBlock) and isinstance(position, Position)
        body, wide = built.body, position.blocks[block.type]
        if block.type == "cnn":
            reduce, bn1, _, grouped, bn2, _, expand, bn3 = body
            groups, width = grouped.groups, grouped.weight.shape[0]
            per = width // groups
            _copy(reduce.weight, wide.reduce[:width, : reduce.weight.shape[1]])
            _copy(grouped.weight, torch.cat([wide.grouped[g * per : (g + 1) * per, g * per : (g + 1) * per] for g in range(groups)]))
            _copy(expand.weight, wide.expand[: expand.weight.shape[0], :width])
            for mine, theirs in ((bn1, wide.bn1), (bn2, wide.bn2), (bn3, wide.bn3)):
                _copy_bn(mine, theirs)
        elif block.type == "vit":
            assert isinstance(body, WindowAttentionBlock)
            c, q = body.norm1.weight.shape[0], body.qkv_dim
            _copy_bn(body.norm1, wide.norm1)
            _copy_bn(body.norm2, wide.norm2)
            _copy(body.qkv.weight, torch.cat([lin.weight[:q, :c] for lin in (wide.q, wide.k, wide.v)]))
            _copy(body.qkv.bias, torch.cat([lin.bias[:q] for lin in (wide.q, wide.k, wide.v)]))
            _copy(body.proj.weight, wide.proj.weight[:c, :q])
            _copy(body.proj.bias, wide.proj.bias[:c])
            hidden = body.mlp[0].weight.shape[0]
            _copy(body.mlp[0].weight, wide.fc1.weight[:hidden, :c])
            _copy(body.mlp[0].bias, wide.fc1.bias[:hidden])
            _copy(body.mlp[2].weight, wide.fc2.weight[:c, :hidden])
            _copy(body.mlp[2].bias, wide.fc2.bias[:c])
        else:
            assert isinstance(body, MambaBlock)
            c, inner, heads, taps = body.norm.weight.shape[0], body.inner, body.heads, body.conv.weight.shape[-1]
            _copy_bn(body.norm, wide.norm)
            _copy(body.in_proj.weight, torch.cat([wide.in_x.weight[:inner, :c], wide.in_z.weight[:inner, :c]]))
            _copy(body.conv.weight, wide.conv.weight[:inner, :, wide.conv.weight.shape[-1] - taps :])
            _copy(body.conv.bias, wide.conv.bias[:inner])
            state = body.d_state
            _copy(
                body.x_proj.weight, torch.cat([wide.to_dt.weight[:heads, :inner], wide.to_b.weight[:state, :inner], wide.to_c.weight[:state, :inner]])
            )
            for name in ("dt_bias", "a_log", "skip"):
                _copy(getattr(body, name), getattr(wide, name)[:heads])
            _copy(body.out_proj.weight, wide.out.weight[:c, :inner])
        side = built.side
        if isinstance(side, nn.Sequential) and len(side) == 2:  # residual 1x1 shortcut
            o, i = side[0].weight.shape[:2]
            _copy(side[0].weight, position.shortcut[:o, :i])
            _copy_bn(side[1], position.shortcut_bn)
        elif isinstance(side, nn.Sequential):  # parallel local branch
            o, i = side[2].weight.shape[:2]
            _copy(side[0].weight, position.depthwise[:i])
            _copy_bn(side[1], position.local_bn1)
            _copy(side[2].weight, position.pointwise[:o, :i])
            _copy_bn(side[3], position.local_bn2)
    _copy_bn(net.norm, supernet.norm)
    c = net.classifier.weight.shape[1]
    _copy(net.classifier.weight, supernet.classifier.weight[:, :c])
    _copy(net.classifier.bias, supernet.classifier.bias)


def test_a_subnet_is_the_built_network_with_sliced_weights() -> None:
    """Every sampled architecture (all types, connections, strides, cardinalities, widths) gives
    the supernet's output exactly when its slices are loaded into the builder's network."""
    torch.manual_seed(0)
    space = small_space()
    supernet = HybridSupernet(space, (3, 16, 16), 10)
    with torch.no_grad():  # non-trivial BN statistics, so a wrong slice of them shows
        for m in supernet.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
    supernet.eval()
    x = torch.randn(4, 3, 16, 16)
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    for arch in space.spread_sample(12, rng):
        net = space.build_model(arch, (3, 16, 16), 10).eval()
        _load_slices(net, supernet, arch)
        with torch.no_grad():
            torch.testing.assert_close(supernet(x, path=arch), net(x), rtol=1e-4, atol=1e-4)
        seen |= {f"{b.type}:{b.connection}" for b in arch.blocks}
    assert {"cnn:residual", "cnn:parallel", "vit:residual", "mamba:sequential"} <= seen  # the sample covered the kinds


def test_sandwich_extremes_keep_the_path_and_move_only_widths() -> None:
    space = small_space()
    arch = space.spread_sample(1, np.random.default_rng(3))[0]
    wide, narrow = extreme(space, arch, largest=True), extreme(space, arch, largest=False)
    for a, w, n in zip(arch.blocks, wide.blocks, narrow.blocks, strict=True):
        assert a.type == w.type == n.type and a.connection == w.connection == n.connection
        if a.type == "cnn":
            assert (w.p["planes"], w.p["base_width"], n.p["planes"], n.p["base_width"]) == (32, 64, 16, 32)
            assert a.p["stride"] == w.p["stride"] == n.p["stride"] and a.p["cardinality"] == w.p["cardinality"]
    assert space.contains(wide) and space.contains(narrow)
    with pytest.raises(ValueError, match="optimizer must be"):
        OneShotConfig(method="hybrid_spos", optimizer="adam")
    with pytest.raises(ValueError, match="does not fit"):
        HybridSupernet(space, (3, 8, 8))(torch.zeros(1, 3, 8, 8), path=HybridArch(arch.blocks * 2))


def snapshot(outcome) -> dict[str, torch.Tensor]:  # noqa: ANN001
    """The weights and BN statistics, for ENAS the controller, for GDAS the logits."""
    state = {f"model.{k}": v.clone() for k, v in outcome.method.model.state_dict().items()}
    arch = outcome.method.arch_state()
    for k, v in arch.get("controller", {}).items():
        state[f"controller.{k}"] = v.clone()
    for i, alpha in enumerate(arch.get("alphas", [])):
        state[f"alpha.{i}"] = alpha.clone()
    return state


@pytest.mark.parametrize("method", ["hybrid_spos", "hybrid_enas", "hybrid_gdas"])
def test_killed_hybrid_training_resumes_to_the_uninterrupted_result_and_caches(method: str, digits: ImageDataset, tmp_path) -> None:  # noqa: ANN001
    space = small_space()
    config = OneShotConfig(method=method, epochs=2, batch_size=32, seed=1)
    straight = train_supernet(space, digits, config, tmp_path / "a")
    killed = train_supernet(space, digits, config, tmp_path / "b", stop_after=1)
    assert killed.epochs_done == 1 and (killed.folder / "last.pt").is_file()
    resumed = train_supernet(space, digits, config, tmp_path / "b")
    assert resumed.resumed_from == 1 and resumed.trained_epochs == 1
    want, got = snapshot(straight), snapshot(resumed)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    again = train_supernet(space, digits, config, tmp_path / "b")
    assert again.cache_hit and again.trained_epochs == 0
    ranking = again.method.ranking(6)
    assert [s for _, s in ranking] == sorted((s for _, s in ranking), reverse=True)
    assert ranking[0][1] == inherited_accuracy(again.method.model, ranking[0][0], digits)  # recalibration makes scores repeatable


def test_decision_sampling_trains_every_type_equally_often(digits: ImageDataset) -> None:
    """Uniform architectures are mostly of the type with the most hyperparameter combinations;
    per-decision draws give every type a third of the blocks (and stay valid)."""
    space = small_space()
    shares = {}
    for sampling in ("architecture", "decision"):
        method = METHODS.get("hybrid_spos")(space, digits, OneShotConfig(method="hybrid_spos", sampling=sampling))
        paths = [method.sample_path() for _ in range(200)]
        for arch in paths:
            space.validate(arch)
        types = [t for arch in paths for t in arch.types]
        shares[sampling] = {t: types.count(t) / len(types) for t in space.types}
    assert all(0.27 < share < 0.40 for share in shares["decision"].values()), shares
    assert shares["architecture"]["cnn"] > shares["decision"]["cnn"] + 0.1, shares
    with pytest.raises(ValueError, match="sampling must be"):
        OneShotConfig(method="hybrid_spos", sampling="path")
    with pytest.raises(ValueError, match="sampling must be"):  # a pipeline config fails when it is checked
        check_options("spos", {"sampling": "path"})


def test_gdas_draws_valid_paths_whose_gates_carry_the_gradient(digits: ImageDataset) -> None:
    space = small_space()
    method = METHODS.get("hybrid_gdas")(space, digits, OneShotConfig(method="hybrid_gdas", epochs=2, batch_size=32))
    assert method.tau() == 10.0
    depths = set()
    for _ in range(20):
        arch, (per_block, features) = method.draw(None)
        space.validate(arch)  # infeasible options are masked, so every draw is in the space
        depths.add(arch.depth)
        assert len(per_block) == arch.depth and torch.allclose(torch.stack([*per_block, features]), torch.ones(arch.depth + 1))
    assert depths == {4, 5}
    x, y = digits.val_x[:16], digits.val_y[:16]
    method.model.eval()
    gated = method.model(x, path=arch, gates=(per_block, features))
    with torch.no_grad():
        assert torch.allclose(gated, method.model(x, path=arch), atol=1e-6)  # gates of value 1 change nothing forward
    nn.functional.cross_entropy(gated, y).backward(inputs=method.alphas)
    assert all(a.grad is not None and float(a.grad.abs().sum()) > 0 for a in method.alphas)  # depth, types, connections
    before = [a.detach().clone() for a in method.alphas]
    method.model.train()
    method.step(digits.train_x[:16], digits.train_y[:16], x, y)
    assert not any(torch.equal(b, a) for b, a in zip(before, method.alphas))  # one step moves every logit tensor
    with torch.no_grad():
        method.alphas[0][:] = torch.tensor([0.0, 50.0])  # depth 5
        method.alphas[1][:, space.types.index("mamba")] = 50.0
        method.alphas[2][:, CONNECTIONS.index("residual")] = 50.0
    greedy = method.candidates(4)[0]  # the argmax path follows the logits
    assert greedy.types == ("mamba",) * 5 and {b.connection for b in greedy.blocks} == {"residual"}
    assert method.candidates(4) == method.candidates(4)  # seeded: the same ranking from the same state


def test_spos_strategy_hands_out_the_supernet_ranking_in_order(tmp_path) -> None:  # noqa: ANN001
    assert "spos" in strategy_names() and strategy_class("spos").takes_data
    space = small_space()
    options = {
        "data": {"kind": "digits", "max_items": 120, "val_fraction": 0.5, "seed": 0},
        "epochs": 1,
        "batch_size": 32,
        "candidates": 5,
        "cache_dir": str(tmp_path),
    }
    strategy = make_strategy("spos", space, seed=0, **options)
    first = strategy.ask(2)
    ranked = list(strategy.ranked or [])
    assert len(ranked) == 3 and strategy.best()[0] == first[0]
    assert isinstance(strategy.outcome.method.optimizer, torch.optim.AdamW)  # the hybrid default: the v2 table's optimiser
    strategy.tell(first, [1.0, 2.0])
    again = make_strategy("spos", space, seed=0, **options)
    again.load_state_dict(json.loads(json.dumps(strategy.state_dict())))  # a resumed search keeps the rest of the ranking
    assert [space.to_string(a) for a in again.ask(3)] == ranked
    assert len(again.ask(2)) == 2  # then uniform samples
    gdas = make_strategy("darts", space, seed=0, **options)  # darts on the hybrid space: GDAS' sampled relaxation
    assert len(gdas.ask(2)) == 2 and isinstance(gdas.outcome.method, HybridGDAS)
    for name in ("darts2", "drnas"):
        with pytest.raises(TypeError, match="NB201 cell space, got HybridSpace"):
            make_strategy(name, space)


@pytest.mark.slow
def test_pipeline_searches_the_hybrid_space_with_the_supernet_ranking(tmp_path) -> None:  # noqa: ANN001
    """`search.strategy=spos` in the pipeline: the supernet trains on the run's own data, and
    the search generations ask its ranking, best first."""
    import pandas as pd
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import nas_pipeline
    from tasks.config import load_config
    from tasks.data_ref import DataRef
    from tasks.spaces import space_from_dict

    cache = tmp_path / "supernets"
    overrides = [
        "run_name=oneshot",
        f"runs_root={tmp_path / 'runs'}",
        "space.min_depth=4",
        "space.max_depth=5",
        "population.size=3",
        "pruning.layers=[]",
        "evaluation.proxies=[params]",
        "data.max_items=200",
        "search.strategy=spos",
        f"search.options={{epochs: 1, candidates: 6, batch_size: 32, cache_dir: {cache}}}",
        "search.generations=2",
        "search.per_generation=2",
        "training.top_k=1",
        "training.epochs=1",
        "training.max_batches_per_epoch=2",
        "registry.enabled=false",
    ]
    cfg = load_config(None, overrides)
    with prefect_test_harness(server_startup_timeout=120):
        result = nas_pipeline(cfg)
    searched = pd.read_parquet(f"{result['run_dir']}/07_search.parquet")
    asked = searched[searched["generation"] > 0]["arch"].tolist()
    (folder,) = cache.iterdir()  # one supernet, trained on the run's data
    space = space_from_dict(json.loads((tmp_path / "runs" / "oneshot" / "space.json").read_text())["connections"])  # the space searched
    again = make_strategy("spos", space, seed=cfg.seed, data=DataRef.of(cfg).model_dump(), **cfg.search.options)
    first = again.ask(1)  # the same supernet, from the cache: the answer heads the ranking
    assert again.outcome.cache_hit and again.outcome.folder == folder
    assert asked == [space.to_string(a) for a in first + again.ask(len(asked) - 1)]
