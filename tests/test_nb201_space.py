"""The NB201 cell space shares the space interface and reads the benchmark's strings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from nas_lib.space import InvalidArchitectureError, NB201Arch, NB201Space
from nas_lib.space.nb201 import OPS

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_full_space_enumerates_15625_distinct_cells():
    space = NB201Space()
    cells = list(space.enumerate())
    assert space.size() == len(set(cells)) == 5**6
    assert len({space.arch_id(c) for c in cells}) == len(cells)


def test_parse_format_round_trip():
    space = NB201Space()
    spec = space.from_string(BEST)
    assert spec.ops[3] == "skip_connect"
    assert space.to_string(spec) == BEST
    assert space.decode(space.encode(spec)) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "expected 3"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv_5x5'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "malformed token"),
    ],
)
def test_bad_strings_are_named(text, message):
    with pytest.raises(InvalidArchitectureError, match=message):
        NB201Space().from_string(text)


def test_restricted_space_size_membership_and_sampling():
    cut = [OPS] * 3 + [("skip_connect",)] + [OPS] * 2  # input->output edge fixed to skip
    space = NB201Space(cut)
    assert space.size() == 5**5
    rng = np.random.default_rng(0)
    assert all(space.sample(rng).ops[3] == "skip_connect" for _ in range(50))
    outside = NB201Space().from_string(BEST.replace("skip_connect~0", "none~0"))
    verdict = space.contains(outside)
    assert not verdict and "edge 0->3" in verdict.reason
    for _ in range(20):
        a, b = space.sample(rng), space.sample(rng)
        assert space.contains(space.mutate(a, rng)) and space.mutate(a, rng) != a
        assert space.contains(space.crossover(a, b, rng))
        assert space.contains(space.project([int(rng.integers(5)) for _ in range(6)], rng))
    with pytest.raises(ValueError, match="empty"):
        NB201Space([OPS] * 5 + [()])


def test_network_forward_backward():
    torch.manual_seed(0)
    model = NB201Space().build_model(NB201Space().from_string(BEST), (3, 32, 32), 10)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 64)


def test_all_none_cell_gives_a_constant_network():
    model = NB201Space().build_model(NB201Arch(("none",) * 6)).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 32, 32))
    torch.testing.assert_close(out[0], out[1])


def test_every_table_string_parses(shared_data):
    table = pd.read_csv(shared_data / "nb201" / "nb201_cifar10.csv")
    space = NB201Space()
    ids = {space.arch_id(space.from_string(a)) for a in table["arch"]}
    assert len(ids) == len(table) == 15625
    best = table.loc[table["cifar10_test_acc"].idxmax(), "arch"]
    assert best == BEST
