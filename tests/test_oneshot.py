"""`nas_lib.oneshot`: the NB201 supernet, its trainers (resume, cache), BN recalibration, rank
correlation and the one-shot strategies in `ehnas bench search` (tiny scale, seconds)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from ehnas.cli import app
from nas_lib.bench.search import benchmark, load_table, nb201_space_for
from nas_lib.data.datasets import ImageDataset, load_dataset
from nas_lib.oneshot import METHODS, OneShotConfig, Supernet, rank_correlation, recalibrate_bn, train_supernet
from nas_lib.oneshot.enas import ENAS
from nas_lib.oneshot.strategies import ONESHOT_STRATEGIES
from nas_lib.search import STRATEGIES, strategy_class
from nas_lib.space.nb201 import NB201Space, parse_nb201
from tests.conftest import ASSETS, SHARED_DATA

torch.set_num_threads(1)
CIFAR = SHARED_DATA / "cifar10" / "cifar10_5000.npz"
TINY_TABLE = ASSETS / "nb201_tiny.csv"


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    """120 of scikit-learn's 8x8 digits, split 60/60 (no download, no shared data)."""
    return load_dataset("digits", max_items=120, val_fraction=0.5, seed=0)


def tiny(method: str, epochs: int = 2, seed: int = 0) -> OneShotConfig:
    return OneShotConfig(method=method, channels=4, cells_per_stage=1, epochs=epochs, batch_size=32, seed=seed)


def answer_of(outcome) -> str:  # noqa: ANN001
    method = outcome.method
    cell = method.answer(5) if method.name == "spos" else method.answer()
    return method.space.to_string(cell)


def snapshot(outcome) -> dict[str, torch.Tensor]:  # noqa: ANN001
    """Every tensor of the trained state: weights, BN statistics, architecture parameters."""
    state = {f"model.{k}": v.clone() for k, v in outcome.method.model.state_dict().items()}
    arch = outcome.method.arch_state()
    for i, a in enumerate(arch.get("alphas", [])):
        state[f"alpha.{i}"] = a.clone()
    for k, v in arch.get("controller", {}).items():
        state[f"controller.{k}"] = v.clone()
    if "baseline" in arch:
        state["baseline"] = torch.tensor(arch["baseline"])
    return state


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_methods_are_registered() -> None:
    assert METHODS.names() == ["darts", "darts2", "drnas", "enas", "hybrid_enas", "hybrid_gdas", "hybrid_spos", "spos"]
    assert ONESHOT_STRATEGIES.names() == ["darts", "darts2", "drnas", "enas", "spos"]
    assert not set(ONESHOT_STRATEGIES.names()) & set(STRATEGIES.names())  # table-speed tests never build them
    with pytest.raises(KeyError, match="one-shot: darts"):
        strategy_class("nope")
    with pytest.raises(ValueError, match="epochs"):
        OneShotConfig(epochs=0)


def test_supernet_path_equals_one_hot_weights(digits: ImageDataset) -> None:
    torch.manual_seed(0)
    space = NB201Space()
    net = Supernet(space.edge_ops, channels=4, in_channels=1).eval()
    ops = ("nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none")
    path = net.path_of(ops)
    assert net.ops_of(path) == ops
    one_hot = [torch.nn.functional.one_hot(torch.tensor(i), len(allowed)).float() for i, allowed in zip(path, space.edge_ops)]
    x = digits.train_x[:8]
    assert torch.allclose(net(x, path=path), net(x, weights=one_hot), atol=1e-6)
    other = net.path_of(("skip_connect",) * 6)
    assert not torch.allclose(net(x, path=path), net(x, path=other))
    with pytest.raises(ValueError, match="exactly one"):
        net(x)


def test_supernet_on_a_restricted_space() -> None:
    space = nb201_space_for(list(load_table(TINY_TABLE, "synthetic_acc")))
    net = Supernet(space.edge_ops, channels=4)
    assert [len(e.candidates) for e in net.layers[0].edges] == [3] * 6
    with pytest.raises(ValueError, match="outside the supernet"):
        net.path_of(("nor_conv_3x3",) * 6 if "nor_conv_3x3" not in space.edge_ops[0] else ("none",) * 6)


def test_enas_controller_respects_a_restricted_space(digits: ImageDataset) -> None:
    edge_ops = [("skip_connect",), ("none", "nor_conv_3x3"), *[("nor_conv_1x1", "avg_pool_3x3", "skip_connect")] * 4]
    space = NB201Space(edge_ops)
    method = ENAS(space, digits, tiny("enas"))
    generator = torch.Generator().manual_seed(0)
    paths = {method.controller(generator).path for _ in range(200)}
    for path in paths:
        assert all(0 <= i < len(allowed) for i, allowed in zip(path, space.edge_ops))
    assert {p[1] for p in paths} == {0, 1} and {p[2] for p in paths} == {0, 1, 2}  # every candidate is reachable
    assert all(p[0] == 0 for p in paths)  # a single candidate: no choice, probability 1
    assert space.contains(method.answer(3))


def test_enas_reinforce_raises_the_probability_of_the_rewarded_op(digits: ImageDataset) -> None:
    method = ENAS(NB201Space(), digits, tiny("enas"))
    target = NB201Space().edge_ops[0].index("nor_conv_3x3")
    before = method.controller().probs[0].detach()[target]
    for group in method.controller_optimizer.param_groups:
        group["lr"] = 0.05  # a few large steps instead of hundreds of small ones
    torch.manual_seed(0)
    rewards = [method.reinforce(lambda p: float(p[0] == target)) for _ in range(30)]
    after = method.controller().probs[0].detach()[target]
    assert any(r > 0.5 for r in rewards) and any(r < 0.5 for r in rewards)  # both outcomes were seen
    assert before < 0.25 and after > 0.5


@pytest.mark.parametrize("name", [m for m in METHODS.names() if not m.startswith("hybrid_")])  # hybrid: test_oneshot_hybrid.py
def test_killed_training_resumes_to_the_uninterrupted_result_and_caches(name: str, digits: ImageDataset, tmp_path) -> None:  # noqa: ANN001
    space = NB201Space()
    whole = train_supernet(space, digits, tiny(name), tmp_path / "a")
    assert (whole.epochs_done, whole.resumed_from, whole.trained_epochs) == (2, 0, 2)
    expected, expected_answer = snapshot(whole), answer_of(whole)
    parse_nb201(expected_answer)  # a valid NB201 cell

    killed = train_supernet(space, digits, tiny(name), tmp_path / "b", stop_after=1)
    assert (killed.epochs_done, killed.trained_epochs) == (1, 1)
    with pytest.raises(AssertionError):
        assert_same(snapshot(killed), expected)  # one epoch is not two: the comparison below means something
    resumed = train_supernet(space, digits, tiny(name), tmp_path / "b")
    assert (resumed.resumed_from, resumed.trained_epochs, resumed.epochs_done) == (1, 1, 2)
    assert_same(snapshot(resumed), expected)
    assert answer_of(resumed) == expected_answer

    again = train_supernet(space, digits, tiny(name), tmp_path / "b")
    assert again.cache_hit and again.trained_epochs == 0 and again.losses == ()
    assert answer_of(again) == expected_answer
    assert json.loads((again.folder / "progress.json").read_text())["epoch"] == 2


def test_checkpoint_folder_is_keyed_by_config_and_data(digits: ImageDataset, tmp_path) -> None:  # noqa: ANN001
    space = NB201Space()
    first = train_supernet(space, digits, tiny("darts", epochs=1), tmp_path)
    other_seed = train_supernet(space, digits, tiny("darts", epochs=1, seed=1), tmp_path)
    other_data = train_supernet(space, load_dataset("digits", max_items=100, val_fraction=0.5, seed=0), tiny("darts", epochs=1), tmp_path)
    assert len({first.folder, other_seed.folder, other_data.folder}) == 3
    assert other_seed.trained_epochs == other_data.trained_epochs == 1


def test_bn_recalibration_resets_and_reestimates_running_stats(digits: ImageDataset) -> None:
    space = NB201Space()
    outcome = train_supernet(space, digits, tiny("spos", epochs=1), None)
    net = outcome.method.model
    bn = net.layers[0].edges[0].candidates[space.edge_ops[0].index("nor_conv_3x3")][2]
    trained = bn.running_mean.clone()
    conv_path = net.path_of(("nor_conv_3x3",) * 6)
    recalibrate_bn(net, conv_path, digits.train_x, batches=2, batch_size=16)
    assert not net.training
    assert int(bn.num_batches_tracked) == 2 and not torch.equal(bn.running_mean, trained)
    first = bn.running_mean.clone()
    recalibrate_bn(net, conv_path, digits.train_x, batches=2, batch_size=16)
    assert torch.equal(bn.running_mean, first)  # the same fixed batches every time
    recalibrate_bn(net, net.path_of(("skip_connect",) * 6), digits.train_x, batches=2, batch_size=16)
    assert int(bn.num_batches_tracked) == 0 and torch.equal(bn.running_mean, torch.zeros_like(first))  # unused op: reset only


def test_rank_correlation_pairs_scores_with_the_table(digits: ImageDataset) -> None:
    space = NB201Space()
    outcome = train_supernet(space, digits, tiny("spos", epochs=1), None)
    cells = [space.to_string(space.sample(__import__("numpy").random.default_rng(s))) for s in range(12)]
    probe = rank_correlation(outcome.method.model, space, digits, dict.fromkeys(cells, 0.0), n=len(set(cells)))
    scores = dict(zip(probe.cells, probe.inherited))
    assert len(set(probe.inherited)) > 1
    follows = rank_correlation(outcome.method.model, space, digits, scores, n=len(scores))
    opposes = rank_correlation(outcome.method.model, space, digits, {c: -v for c, v in scores.items()}, n=len(scores))
    assert follows.rho == pytest.approx(1.0) and opposes.rho == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="asked for"):
        rank_correlation(outcome.method.model, space, digits, scores, n=len(scores) + 1)


def test_strategy_state_keeps_its_answer() -> None:
    space = NB201Space()
    strategy = strategy_class("darts")(space, seed=0, epochs=1)
    strategy.answer = space.from_string("|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|")
    again = strategy_class("darts")(space, seed=3)
    again.load_state_dict(json.loads(json.dumps(strategy.state_dict())))
    assert again.best()[0] == strategy.answer and again.config.epochs == 1
    with pytest.raises(TypeError, match="NB201"):
        strategy_class("spos")(object(), seed=0)  # type: ignore[arg-type]


@pytest.mark.skipif(not CIFAR.is_file(), reason=f"CIFAR-10 sample not found at {CIFAR} (see shared/data/README.md)")
def test_bench_search_runs_oneshot_and_reports_the_true_table_metric(tmp_path) -> None:  # noqa: ANN001
    table = load_table(TINY_TABLE, "synthetic_acc")  # a restricted space: 3 candidates per edge
    options = {
        "images": str(CIFAR),
        "image_size": 8,
        "max_items": 120,
        "cache_dir": str(tmp_path / "ckpt"),
        "channels": 4,
        "epochs": 1,
        "batch_size": 32,
        "candidates": 4,
    }
    result = benchmark(table, ["drnas"], budget=2, seeds=1, options={"drnas": options})
    for s in result["strategies"].values():
        assert len(s["answers"]) == 1 and s["answers"][0] in table.values()
        assert s["curve"] == [s["answers"][0]] * 2  # the answer is the one-shot cell from the first query on
    out = tmp_path / "r.json"
    args = [
        "bench",
        "search",
        "--table",
        str(TINY_TABLE),
        "--metric",
        "synthetic_acc",
        "--strategies",
        "drnas",
        "--budget",
        "1",
        "--seeds",
        "1",
        "--options",
        json.dumps({"drnas": options}),
        "--out",
        str(out),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["strategies"]["drnas"]["mean"] == pytest.approx(result["strategies"]["drnas"]["mean"])  # cache hit
