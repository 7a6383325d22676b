"""Rung training: a promoted architecture continues exactly, and a straight rung is the training loop's own."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from nas_lib.data.datasets import load_dataset
from nas_lib.fidelity.training import RungProtocol, build_seeded, checkpoint_epochs, train_to_budget
from nas_lib.train import train_and_evaluate
from tasks.config import PipelineConfig
from tasks.spaces import base_space_dict, space_from_dict

PROTOCOL = RungProtocol(horizon=3, batch_size=32, lr=3e-3, max_batches_per_epoch=3, seed=5)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the pipeline runs (config torch_threads); many threads crawl on a busy machine
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", max_items=300, seed=0)


@pytest.fixture(scope="module")
def space_and_arch():
    space = space_from_dict(base_space_dict(PipelineConfig().space))
    arch = space.to_string(space.sample(np.random.default_rng(2), depth=4))  # cnn and vit blocks, a fraction of a second per epoch
    return space, arch


def _weights(checkpoint: bytes) -> dict[str, torch.Tensor]:
    return torch.load(io.BytesIO(checkpoint), weights_only=True)["model"]


def test_continued_rung_equals_straight_training(digits, space_and_arch) -> None:
    space, arch = space_and_arch
    straight = train_to_budget(build_seeded(space, arch, digits, 5), digits, PROTOCOL, 3)
    first = train_to_budget(build_seeded(space, arch, digits, 5), digits, PROTOCOL, 1)
    assert first.epochs_run == 1 and checkpoint_epochs(first.checkpoint) == 1
    continued = train_to_budget(build_seeded(space, arch, digits, 5), digits, PROTOCOL, 3, checkpoint=first.checkpoint)
    assert continued.state == straight.state == "ok"
    assert continued.history == straight.history  # every epoch's losses and accuracy, exactly
    assert continued.history[0] == first.history[0]
    a, b = _weights(continued.checkpoint), _weights(straight.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_restart_differs_from_continuation(digits, space_and_arch) -> None:
    """The test above can fail: a rung of its own short schedule, or a continuation that drops the
    checkpoint's optimiser state, gives other numbers."""
    space, arch = space_and_arch
    straight = train_to_budget(build_seeded(space, arch, digits, 5), digits, PROTOCOL, 2)
    short = train_to_budget(build_seeded(space, arch, digits, 5), digits, RungProtocol(**{**PROTOCOL.__dict__, "horizon": 1}), 1)
    assert short.history[0]["val_loss"] != straight.history[0]["val_loss"]
    first = train_to_budget(build_seeded(space, arch, digits, 5), digits, PROTOCOL, 1)
    state = torch.load(io.BytesIO(first.checkpoint), weights_only=True)
    state["optimizer"]["state"] = {}  # weights and schedule kept, AdamW moments lost
    buffer = io.BytesIO()
    torch.save(state, buffer)
    crippled = train_to_budget(build_seeded(space, arch, digits, 5), digits, PROTOCOL, 2, checkpoint=buffer.getvalue())
    assert crippled.history[0] == straight.history[0]
    assert crippled.history[1]["train_loss"] != straight.history[1]["train_loss"]


def test_straight_rung_matches_train_and_evaluate(digits, space_and_arch) -> None:
    space, arch = space_and_arch
    rung = train_to_budget(build_seeded(space, arch, digits, 5), digits, PROTOCOL, 3)
    full = train_and_evaluate(build_seeded(space, arch, digits, 5), digits, PROTOCOL.train_config())
    assert rung.history == full.history
    assert rung.score == full.history[-1]["val_accuracy"]


def test_checkpoint_of_another_protocol_is_refused(digits, space_and_arch) -> None:
    space, arch = space_and_arch
    first = train_to_budget(build_seeded(space, arch, digits, 5), digits, PROTOCOL, 1)
    other = RungProtocol(**{**PROTOCOL.__dict__, "lr": 1e-3})
    assert other.version() != PROTOCOL.version()
    with pytest.raises(ValueError, match="protocol"):
        train_to_budget(build_seeded(space, arch, digits, 5), digits, other, 2, checkpoint=first.checkpoint)
    with pytest.raises(ValueError, match="1..3"):
        train_to_budget(build_seeded(space, arch, digits, 5), digits, PROTOCOL, 4)


def test_non_finite_loss_is_a_failed_rung(digits, space_and_arch) -> None:
    space, arch = space_and_arch
    exploding = RungProtocol(horizon=2, batch_size=32, lr=1e30, max_batches_per_epoch=3, seed=5)
    result = train_to_budget(build_seeded(space, arch, digits, 5), digits, exploding, 2)
    assert result.state == "failed" and "non-finite" in (result.error or "")
    assert math.isnan(result.score) and result.checkpoint is None
