"""AZ-NAS's four proxies, ZiCo and the fit-free rank aggregation: maths checks on small cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nas_lib.bench.proxies import add_rank_rows, proxy_search
from nas_lib.proxies import ScoringContext, get_proxy, score_proxies
from nas_lib.proxies.az_expressivity import spectral_entropy
from nas_lib.proxies.az_trainability import stage_score
from nas_lib.proxies.ensemble import Ensemble, log_percentile_sum, rank_aggregate
from nas_lib.proxies.gradients import stage_pass
from nas_lib.proxies.stages import StageCapture, feature_stages, stage_cross_gradients
from nas_lib.proxies.zico import zico_score
from nas_lib.space import get_space

SPACE = get_space("nb201")
CELL = SPACE.from_string("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|")
AZ = ["az_expressivity", "az_progressivity", "az_trainability", "az_complexity"]


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 8, 8, generator=gen), torch.arange(8) % 4


def test_spectral_entropy_is_log_channels_for_isotropic_and_zero_for_rank_one_features() -> None:
    gen = torch.Generator().manual_seed(0)
    iso = torch.randn(64, 8, 16, 16, generator=gen)
    assert spectral_entropy(iso) == pytest.approx(math.log(8), abs=0.01)
    rank_one = torch.randn(64, 1, 16, 16, generator=gen) * torch.arange(1.0, 9.0).view(1, 8, 1, 1)
    assert spectral_entropy(rank_one) == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError, match="constant"):
        spectral_entropy(torch.ones(4, 3, 2, 2))


def test_stage_score_peaks_at_unit_gain_and_identity_is_minus_infinity() -> None:
    assert stage_score(torch.eye(4)) == pytest.approx(0.0, abs=1e-5)
    assert stage_score(2 * torch.eye(4)) == pytest.approx(-0.5, abs=1e-5)
    assert stage_score(None) == -math.inf


def test_stage_cross_gradient_estimates_a_linear_stage() -> None:
    x = torch.randn(16, 4, 8, 8, requires_grad=True)
    weight = torch.diag(torch.tensor([3.0, 1.0, 0.5, 0.5]))
    y = torch.einsum("oc,nchw->nohw", weight, x)
    (m,) = stage_cross_gradients([x, y], seed=0)
    # E[g_in g_out^T] = W^T E[g g^T] = W^T for Rademacher g: the largest singular value is 3
    assert float(torch.linalg.matrix_norm(m, ord=2)) == pytest.approx(3.0, rel=0.05)
    assert stage_cross_gradients([x, x.view_as(x)], seed=0) == [None]  # a pass-through stage


def test_strided_stage_folds_the_input_grid_onto_the_output() -> None:
    x = torch.randn(4, 2, 8, 8, requires_grad=True)
    y = nn.functional.avg_pool2d(x, 2)
    (m,) = stage_cross_gradients([x, y], seed=0)
    assert m.shape == (2 * 4, 2)


def test_multiply_adds_are_counted_from_output_shapes() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.Flatten(), nn.Linear(8 * 36, 5))
    cap = StageCapture(net, features=False, macs=True)
    net(torch.randn(2, 3, 6, 6))
    cap.remove()
    assert cap.macs == 8 * 36 * 3 * 9 + 8 * 36 * 4 * 9 + 5 * 8 * 36


def test_nb201_stages_are_stem_cells_and_reductions() -> None:
    model = SPACE.build_model(CELL)
    assert len(feature_stages(model)) == 1 + 15 + 2


def test_az_pass_uses_its_own_initialisation_and_leaves_the_shared_network_alone(batch) -> None:  # noqa: ANN001
    ctx = ScoringContext(SPACE, CELL, batch, seed=0, wanted=set(AZ))
    before = [p.detach().clone() for p in ctx.model().parameters()]
    stage_pass(ctx)
    assert all(torch.equal(a, b) for a, b in zip(before, ctx.model().parameters()))
    conv = next(m for m in ctx.reinitialised_model("kaiming_fan_in", lambda m: None).modules() if isinstance(m, nn.Conv2d))
    fan_in = conv.weight[0].numel()
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)  # Kaiming, not PyTorch's default


def test_az_pass_reads_gaussian_inputs_not_the_images(batch) -> None:  # noqa: ANN001
    other = (torch.rand_like(batch[0]) * 5.0, batch[1])  # other images of the same shape
    for name in ("az_expressivity", "az_trainability"):
        a = get_proxy(name).score(SPACE, CELL, batch, seed=1)
        b = get_proxy(name).score(SPACE, CELL, other, seed=1)
        c = get_proxy(name).score(SPACE, CELL, batch, seed=2)
        assert a.ok and a.value == b.value, name  # the images are not read
        assert a.value != c.value, name  # the seed draws the inputs (and the weights)
    ctx = ScoringContext(SPACE, CELL, batch, seed=1)
    x = ctx.gaussian_batch()
    assert x.shape == batch[0].shape and abs(float(x.mean())) < 0.1 and float(x.std()) == pytest.approx(1.0, abs=0.1)


def test_four_az_proxies_share_one_pass_and_match_separate_scoring(batch) -> None:  # noqa: ANN001
    together = score_proxies(SPACE, CELL, AZ + ["zico"], batch, seed=2)
    for name in AZ + ["zico"]:
        alone = get_proxy(name).score(SPACE, CELL, batch, seed=2)
        assert alone.ok and together[name].value == pytest.approx(alone.value, rel=1e-6), name


def test_zico_matches_its_definition() -> None:
    g = [torch.tensor([[1.0, 2.0, 0.5], [3.0, 2.0, -0.5]], dtype=torch.float64)]  # weight 2 never varies
    # varying weights 0 and 2: mean|g|/std = 2/1 and 0.5/0.5
    assert zico_score(g) == pytest.approx(math.log(2.0 + 1.0))
    assert zico_score([torch.ones(2, 4, dtype=torch.float64)]) == 0.0  # no variation: the layer adds nothing


def test_zico_names_a_batch_too_small_to_split() -> None:
    tiny = (torch.randn(3, 3, 8, 8), torch.arange(3))
    result = get_proxy("zico").score(SPACE, CELL, tiny, seed=0)
    assert result.state == "failed" and "at least 4 images" in result.error


def test_rank_aggregation_favours_networks_every_member_ranks_high() -> None:
    cols = {"az_expressivity": [1.0, 2.0, 3.0, float("nan")], "az_trainability": [3.0, 2.0, 4.0, 5.0]}
    agg = rank_aggregate(cols)
    assert int(np.argmax(agg)) == 2 and agg[2] == pytest.approx(math.log(1.0) + math.log(3 / 4))
    assert agg[3] == pytest.approx(math.log(1 / 4) + math.log(1.0))  # a failure ranks last, not dropped
    # a balanced network beats one that is first by one member and last by the other
    assert rank_aggregate({"nwot": [2.0, 3.0, 1.0], "synflow": [2.0, 1.0, 3.0]})[0] > -1.0
    with pytest.raises(ValueError, match="length"):
        rank_aggregate({"nwot": [1.0], "synflow": [1.0, 2.0]})


def test_latency_is_ranked_lower_is_better() -> None:
    assert list(np.argsort(rank_aggregate({"latency": [3.0, 1.0, 2.0]}))) == [0, 2, 1]


def test_fitted_ensemble_says_what_it_was_fitted_on_and_is_fit_free_elsewhere(batch) -> None:  # noqa: ANN001
    assert "NB201 CIFAR-10" in Ensemble.fitted_on
    hybrid = get_space("hybrid")
    spec = hybrid.sample(np.random.default_rng(0), depth=4)
    ctx = ScoringContext(hybrid, spec, batch, seed=0, wanted={"ensemble"} | set(Ensemble.requires))
    members = {n: ctx.value(get_proxy(n)) for n in sorted(Ensemble.requires)}
    assert ctx.value(get_proxy("ensemble")) == pytest.approx(log_percentile_sum(members))


def _frame(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for name, vals in values.items():
        for k, v in enumerate(vals):
            rows.append(
                {
                    "arch": f"a{k}",
                    "arch_id": f"id{k}",
                    "proxy": name,
                    "version": get_proxy(name).version,
                    "value": v,
                    "seconds": 0.1,
                    "state": "ok" if math.isfinite(v) else "failed",
                    "error": None,
                    "seed": 0,
                }
            )
    return pd.DataFrame(rows)


def test_population_rows_and_search_rank_within_the_drawn_cells() -> None:
    rng = np.random.default_rng(0)
    truth = pd.Series(np.arange(30.0), index=[f"a{k}" for k in range(30)])
    noisy = {n: list(np.arange(30.0) + rng.normal(0, 3, 30)) for n in AZ}
    frame = add_rank_rows(_frame(noisy), "az_nas", seed=0)
    az = frame[frame["proxy"] == "az_nas"].set_index("arch")["value"]
    assert len(az) == 30 and az.idxmax() in {f"a{k}" for k in range(24, 30)}
    result = proxy_search(frame, truth, ["az_nas", "az_complexity"], budget=30, seeds=2)
    assert result["az_nas"]["answers"][0] == truth[az.idxmax()]  # all 30 drawn: the same pick
    assert proxy_search(frame, truth, ["az_nas"], budget=31, seeds=1) == {}  # too few scored cells


@pytest.mark.parametrize("channels", [3, 1])
def test_new_proxies_score_random_hybrid_architectures(channels: int) -> None:
    space = get_space("hybrid")
    rng = np.random.default_rng(1)
    gen = torch.Generator().manual_seed(0)
    batch = (torch.randn(4, channels, 8, 8, generator=gen), torch.arange(4))
    for _ in range(2):
        spec = space.sample(rng, depth=4)
        results = score_proxies(space, spec, AZ + ["zico", "az_nas", "ensemble_free"], batch, seed=0)
        assert all(r.ok for r in results.values()), {k: r.error for k, r in results.items()}
