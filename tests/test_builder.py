"""Every valid spec builds and trains a step; blocks behave as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_lib.blocks import BLOCKS
from nas_lib.blocks.mamba import chunked_scan
from nas_lib.space import BlockSpec, HybridArch, HybridSpace
from nas_lib.space.constraints import CONNECTIONS
from nas_lib.space.stats import count_flops, count_parameters

SPACE = HybridSpace()


def forward_backward(spec: HybridArch, shape: tuple[int, int, int], batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    model = SPACE.build_model(spec, shape, num_classes=5)
    out = model(torch.randn(batch, *shape))
    assert out.shape == (batch, 5)
    assert torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    return out


def small_block(family: str, connection: str, rng: np.random.Generator) -> BlockSpec:
    combos = SPACE.combos[family]
    return BlockSpec(family, combos[int(rng.integers(len(combos)))], connection)


@pytest.mark.parametrize("connection", CONNECTIONS)
@pytest.mark.parametrize("family", BLOCKS.names())
def test_every_family_and_connection_runs(family, connection):
    rng = np.random.default_rng(0)
    # The family sits between conv blocks, so both layout changes (map <-> tokens) are exercised.
    spec = HybridArch(
        (
            small_block("cnn", "sequential", rng),
            small_block(family, connection, rng),
            small_block(family, connection, rng),
            small_block("cnn", "residual", rng),
        )
    )
    forward_backward(spec, (3, 16, 16))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), depth=st.integers(4, 7), side=st.sampled_from([8, 14, 16]), channels=st.sampled_from([1, 3]))
def test_random_specs_build_train_and_round_trip(seed, depth, side, channels):
    rng = np.random.default_rng(seed)
    spec = SPACE.sample(rng, depth=depth)
    assert SPACE.decode(SPACE.encode(spec)) == spec
    assert SPACE.from_string(SPACE.to_string(spec)) == spec
    forward_backward(spec, (channels, side, side))


def test_deep_random_specs_at_cifar_resolution():
    rng = np.random.default_rng(7)
    for depth in (4, 12):
        forward_backward(SPACE.sample(rng, depth=depth), (3, 32, 32), batch=2)


def test_strides_are_clamped_on_tiny_inputs():
    stride2 = BlockSpec.make("cnn", "residual", planes=16, stride=2, cardinality=1, base_width=32)
    spec = HybridArch((stride2,) * 6)
    model = SPACE.build_model(spec, (1, 8, 8), 3)
    assert model.feature_hw == (2, 2)  # 8 -> 4 -> 2, then clamped
    forward_backward(spec, (1, 8, 8))


def test_odd_maps_keep_both_branches_aligned():
    # MNIST at 14x14: a stride-2 block maps 7 -> 4; the side branch must stride 2 as well.
    for connection in ("residual", "parallel"):
        stride2 = BlockSpec.make("cnn", connection, planes=16, stride=2, cardinality=1, base_width=32)
        model = SPACE.build_model(HybridArch((stride2,) * 4), (1, 14, 14), 3)
        assert model.feature_hw == (2, 2)  # 14 -> 7 -> 4 -> 2, then clamped
        forward_backward(HybridArch((stride2,) * 4), (1, 14, 14))


def test_balanced_windows():
    from nas_lib.blocks.vit import balanced_window

    assert [balanced_window(14, s, s) for s in (4, 8, 14, 16, 20, 32)] == [4, 8, 14, 8, 10, 11]
    assert [balanced_window(7, s, s) for s in (7, 8, 16, 32)] == [7, 4, 6, 7]


def test_window_is_clipped_to_the_feature_map():
    big_window = BlockSpec.make("vit", "residual", num_heads=4, mlp_ratio=4, qkv_dim=256, window_size=14)
    forward_backward(HybridArch((big_window,) * 4), (3, 8, 8))
    forward_backward(HybridArch((big_window,) * 4), (3, 20, 20))  # two windows of 10 per side


def test_params_and_flops_are_measured():
    rng = np.random.default_rng(5)
    spec = SPACE.sample(rng, depth=5)
    model = SPACE.build_model(spec, (3, 32, 32), 10)
    small = SPACE.build_model(spec, (3, 16, 16), 10)
    assert count_parameters(model) > 0
    # Convolutions and attention scale with the number of pixels, so 4x the pixels cost more.
    assert count_flops(model, (3, 32, 32)) > 2 * count_flops(small, (3, 16, 16)) > 0


def test_chunked_scan_matches_the_sequential_recurrence():
    torch.manual_seed(0)
    b, length, heads, hdim, state = 2, 45, 3, 4, 5
    x = torch.randn(b, length, heads, hdim, dtype=torch.float64)
    dt = torch.rand(b, length, heads, dtype=torch.float64)
    a = -torch.rand(heads, dtype=torch.float64) * 4
    bm, cm = torch.randn(b, length, state, dtype=torch.float64), torch.randn(b, length, state, dtype=torch.float64)
    h = torch.zeros(b, heads, hdim, state, dtype=torch.float64)
    ref = []
    for t in range(length):
        h = torch.exp(dt[:, t, :, None, None] * a[None, :, None, None]) * h + dt[:, t, :, None, None] * x[:, t, :, :, None] * bm[:, t, None, None, :]
        ref.append(torch.einsum("bhpn,bn->bhp", h, cm[:, t]))
    got = chunked_scan(x, dt, a, bm, cm, chunk=8)
    torch.testing.assert_close(got, torch.stack(ref, dim=1))


def test_mamba_block_is_causal_in_token_order():
    from nas_lib.blocks.mamba import MambaBlock

    torch.manual_seed(0)
    block = MambaBlock(dim=16, d_state=8, expand=2, d_conv=4).eval()
    tokens = torch.randn(1, 30, 16)
    changed = tokens.clone()
    changed[:, 20:] += torch.randn(1, 10, 16)  # a change late in the sequence must not affect earlier outputs
    with torch.no_grad():
        out, out2 = block.forward_tokens(tokens, 5, 6), block.forward_tokens(changed, 5, 6)
    torch.testing.assert_close(out[:, :20], out2[:, :20])
    assert not torch.allclose(out[:, 20:], out2[:, 20:])
