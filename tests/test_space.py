"""The hybrid space: exact size, uniform sampling, membership, encoding and variation."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas_lib.blocks import BLOCKS
from nas_lib.space import BlockSpec, HybridArch, HybridConstraints, HybridSpace, InvalidArchitectureError, hybrid_code
from nas_lib.space.constraints import CONNECTIONS


def test_full_space_size_matches_closed_form():
    # Without cross-block rules every block independently picks a type, a valid combination of
    # its hyperparameters and a connection, so the size is a geometric sum.
    per_block = sum(len(HybridSpace().combos[t]) for t in BLOCKS.names()) * len(CONNECTIONS)
    assert per_block == (72 + 72 + 8) * 3
    assert HybridSpace().size() == sum(per_block**d for d in range(4, 21))


def test_vit_combinations_respect_divisibility():
    combos = HybridSpace().combos["vit"]
    assert all(dict(c)["qkv_dim"] % dict(c)["num_heads"] == 0 for c in combos)
    assert len(combos) == 3 * 2 * 12  # 12 of the 16 (heads, qkv_dim) pairs divide


TINY_HP = {
    "cnn": {"planes": (16,), "stride": (1,), "cardinality": (1,), "base_width": (32, 64)},
    "vit": {"num_heads": (3, 4), "mlp_ratio": (4,), "qkv_dim": (256,), "window_size": (7,)},
    "mamba": {"d_state": (8,), "expand": (1,), "d_conv": (2,)},
}

SMALL_SPACES = {
    "plain": HybridConstraints(
        max_depth=5, hyperparameters=TINY_HP, stage_connections={s: ("sequential", "residual") for s in ("early", "mid", "late")}
    ),
    "stages+pairs": HybridConstraints(
        max_depth=5,
        hyperparameters=TINY_HP,
        stage_types={"early": ("cnn",), "late": ("vit", "mamba")},
        pair_connections={"cnn->vit": ("residual",), "vit->mamba": ("parallel", "sequential")},
        stage_connections={"early": ("sequential",)},
    ),
    "forbidden": HybridConstraints(
        min_depth=4,
        max_depth=5,
        hyperparameters=TINY_HP,
        stage_connections={s: ("residual",) for s in ("early", "mid", "late")},
        forbidden_sequences=(("vit", "mamba"), ("cnn", "cnn", "cnn")),
    ),
    "fractions": HybridConstraints(
        max_depth=5,
        hyperparameters=TINY_HP,
        stage_connections={s: ("parallel",) for s in ("early", "mid", "late")},
        type_fractions={"vit": (0.25, 0.5), "mamba": (0.0, 0.2)},
    ),
}


def brute_force_size(space: HybridSpace) -> int:
    """Counts by enumerating every block sequence and asking `contains` (no dynamic programme)."""
    full = HybridSpace()
    blocks = [BlockSpec(t, combo, conn) for t in full.types for combo in space.combos[t] for conn in CONNECTIONS]
    c = space.constraints
    return sum(
        bool(space.contains(HybridArch(seq))) for depth in range(c.min_depth, c.max_depth + 1) for seq in itertools.product(blocks, repeat=depth)
    )


@pytest.mark.parametrize("name", sorted(SMALL_SPACES))
def test_size_equals_brute_force(name):
    space = HybridSpace(SMALL_SPACES[name])
    assert space.size() == brute_force_size(space)
    assert space.size() > 0


def test_sampling_is_uniform_on_a_small_space():
    space = HybridSpace(
        HybridConstraints(
            min_depth=4,
            max_depth=4,
            hyperparameters=TINY_HP,
            stage_types={"early": ("cnn",), "mid": ("vit", "mamba")},
            stage_connections={s: ("sequential",) for s in ("early", "mid", "late")},
            forbidden_sequences=(("mamba", "vit"),),
        )
    )
    n = space.size()
    assert 10 <= n <= 400
    rng = np.random.default_rng(0)
    counts = Counter(space.sample(rng) for _ in range(30 * n))
    assert len(counts) == n  # every architecture is reachable
    assert all(space.contains(s) for s in counts)
    _, p = stats.chisquare(list(counts.values()))
    assert p > 1e-3


def test_sample_by_depth():
    space = HybridSpace()
    rng = np.random.default_rng(1)
    assert {space.sample(rng, depth=6).depth for _ in range(5)} == {6}
    with pytest.raises(ValueError, match="no architecture"):
        space.sample(rng, depth=30)


def test_constrained_space_is_a_subset():
    narrow = HybridSpace(SMALL_SPACES["stages+pairs"])
    full = HybridSpace()
    rng = np.random.default_rng(2)
    for _ in range(20):
        spec = narrow.sample(rng)
        assert full.contains(spec)
        assert spec.types[0] == "cnn" and spec.types[-1] in ("vit", "mamba")
    assert narrow.size() < full.size()


def vit(heads: int, qkv: int, conn: str = "sequential") -> BlockSpec:
    return BlockSpec.make("vit", conn, num_heads=heads, mlp_ratio=4, qkv_dim=qkv, window_size=7)


def cnn(conn: str = "sequential") -> BlockSpec:
    return BlockSpec.make("cnn", conn, planes=16, stride=1, cardinality=1, base_width=32)


@pytest.mark.parametrize(
    ("blocks", "field", "rule"),
    [
        ((cnn(), cnn(), vit(3, 256), cnn()), "block 2 vit", "qkv_dim 256 is not divisible by num_heads 3"),
        ((cnn(), cnn(), cnn()), "depth", "3 blocks is outside 4..20"),
        ((cnn(), cnn(), cnn(), vit(4, 250)), "block 3 vit.qkv_dim", "250 is not a choice"),
        ((cnn(), cnn(), cnn(), cnn("diagonal")), "block 3 connection", "'diagonal' is not allowed"),
        ((cnn(), BlockSpec("gru", (), "sequential"), cnn(), cnn()), "block 1 type", "unknown block type 'gru'"),
    ],
)
def test_invalid_specs_name_field_and_rule(blocks, field, rule):
    with pytest.raises(InvalidArchitectureError) as err:
        HybridSpace().validate(HybridArch(blocks))
    assert err.value.field == field
    assert rule in err.value.rule
    verdict = HybridSpace().contains(HybridArch(blocks))
    assert not verdict and rule in verdict.reason


def test_constraint_violations_are_named():
    space = HybridSpace(
        HybridConstraints(stage_types={"early": ("cnn",)}, forbidden_sequences=(("cnn", "vit"),), hyperparameters={"vit": {"num_heads": (4,)}})
    )
    early_vit = HybridArch((vit(4, 256), cnn(), cnn(), cnn()))
    assert "not allowed in the early stage" in space.contains(early_vit).reason
    forbidden = HybridArch((cnn(), cnn(), vit(4, 256), cnn()))
    assert "cnn > vit is forbidden" in space.contains(forbidden).reason
    pruned = HybridArch((cnn(), cnn(), cnn(), vit(8, 256)))
    assert "pruned from this space" in space.contains(pruned).reason


def test_encoding_round_trips_and_is_canonical():
    space = HybridSpace()
    rng = np.random.default_rng(3)
    for depth in (4, 9, 20):
        spec = space.sample(rng, depth=depth)
        code = space.encode(spec)
        assert len(code) == len(space.code_cardinalities())
        assert all(0 <= d < c for d, c in zip(code, space.code_cardinalities()))
        assert space.decode(code) == spec
        assert space.from_string(space.to_string(spec)) == spec
        assert space.arch_id(spec) == space.arch_id(space.decode(code))
        assert len(space.arch_id(spec)) == 12


def test_decode_errors_name_the_field():
    space = HybridSpace()
    code = list(space.encode(HybridArch((vit(4, 256),) + (cnn(),) * 3)))
    bad = list(code)
    bad[2] = 9  # num_heads digit of block 0
    with pytest.raises(InvalidArchitectureError, match=r"block 0 vit.num_heads: digit 9 is outside 0..3"):
        space.decode(bad)
    gap = list(code)
    gap[6 * 2 : 6 * 3] = [0] * 6  # empty slot 2 followed by block 3
    with pytest.raises(InvalidArchitectureError, match="follows an empty slot"):
        space.decode(gap)
    with pytest.raises(InvalidArchitectureError, match="expected 120 digits"):
        space.decode(code[:-1])


def test_from_string_rejects_garbage():
    with pytest.raises(InvalidArchitectureError, match="cannot parse"):
        HybridSpace().from_string("cnn planes 16")


@pytest.mark.parametrize("name", sorted(SMALL_SPACES))
def test_mutate_crossover_project_stay_valid(name):
    space = HybridSpace(SMALL_SPACES[name])
    rng = np.random.default_rng(4)
    cards = space.code_cardinalities()
    for _ in range(15):
        a, b = space.sample(rng), space.sample(rng)
        child = space.mutate(a, rng)
        assert space.contains(child) and child != a
        assert space.contains(space.crossover(a, b, rng))
        code = [int(rng.integers(c)) for c in cards]
        assert space.contains(space.project(code, rng))
        assert space.project(space.encode(a), rng) == a  # a valid code projects to itself


def test_constraints_round_trip_and_reject_nonsense():
    c = SMALL_SPACES["forbidden"]
    assert HybridConstraints.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError) as err:
        HybridConstraints.from_dict({"stage_types": {"early": ["lstm"]}, "hyperparameters": {"vit": {"num_heads": [5]}}, "min_depth": 2})
    message = str(err.value)
    assert "unknown block type 'lstm'" in message and "5 is not a choice" in message and "depth range" in message
    with pytest.raises(ValueError, match="unknown constraint keys"):
        HybridConstraints.from_dict({"depth": 3})


def test_preference_counts_preferred_runs():
    space = HybridSpace(HybridConstraints(preferred_sequences=(("cnn", "vit"),)))
    spec = HybridArch((cnn(), vit(4, 256), cnn(), vit(4, 256)))
    assert space.preference(spec) == 2


# Each family's declared code digit; part of the encoding, so a changed digit must fail here.
FAMILY_DIGITS = {"cnn": 1, "vit": 2, "mamba": 3}
TABLES = Path(__file__).resolve().parents[1] / "data" / "tables"


def test_block_digits_are_declared_and_fix_the_type_order():
    assert {name: BLOCKS.get(name).digit for name in BLOCKS.names()} == FAMILY_DIGITS
    assert HybridSpace().types == ("cnn", "vit", "mamba")
    assert HybridSpace().code_cardinalities()[0] == max(FAMILY_DIGITS.values()) + 1


@pytest.mark.parametrize("table", ["hybrid_mnist14.csv", "hybrid_mnist14_seed1.csv"])
def test_trained_table_arch_ids_still_decode(table):
    space = HybridSpace()
    frame = pd.read_csv(TABLES / table)
    assert len(frame) > 0
    for arch, arch_id in zip(frame["arch"], frame["arch_id"]):
        spec = space.from_string(arch)
        assert space.arch_id(spec) == arch_id
        code = space.encode(spec)
        assert space.decode(code) == spec
        type_digits = [code[i * hybrid_code.SLOT] for i in range(spec.depth)]
        assert type_digits == [FAMILY_DIGITS[b.type] for b in spec.blocks]


def test_a_type_digit_no_family_declares_is_named():
    space = HybridSpace()
    code = list(space.encode(HybridArch((cnn(),) * 4)))
    code[0] = max(FAMILY_DIGITS.values()) + 1
    with pytest.raises(InvalidArchitectureError, match=r"block 0 type: digit 4 is outside 0..3"):
        space.decode(code)
