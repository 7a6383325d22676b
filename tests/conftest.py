"""Shared test settings (Prefect and MLflow stay local, quiet and inside a temporary folder) and the
objects several test modules use, each defined once: the reference data, the tiny pipeline config
and the tiny CNN."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from torch import nn

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
for key in ("EHNAS_LLM_API_KEY", "OPENAI_API_KEY", "DASHSCOPE_API_KEY", "EHNAS_LLM_BASE_URL", "OPENAI_BASE_URL", "DASHSCOPE_BASE_URL"):
    os.environ.pop(key, None)  # tests never reach a real endpoint

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
ASSETS = Path(__file__).parent / "assets"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or a skip saying why the test cannot run."""
    if not (SHARED_DATA / "nb201" / "nb201_cifar10.csv").exists():
        pytest.skip(f"reference data not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA


# The smallest pipeline config that runs every step (seconds on CPU), as `--set`/override strings.
TINY_OVERRIDES = (
    "space.min_depth=4",
    "space.max_depth=4",
    "population.size=3",
    "pruning.layers=[]",
    "search.generations=0",
    "training.top_k=1",
    "training.epochs=1",
    "training.max_batches_per_epoch=1",
    "registry.enabled=false",
    "data.proxy_batch=16",
)


@pytest.fixture
def tiny_overrides() -> list[str]:
    """`TINY_OVERRIDES` as a fresh list: ``load_config(None, [*tiny_overrides, ...])`` or ``--set``
    pairs; an override added after them wins."""
    return list(TINY_OVERRIDES)


def make_tiny_cnn(seed: int = 0, num_classes: int = 10) -> nn.Module:
    """A small CNN for 1-channel images (digits), initialised under `seed`: conv 3x3 to 8 channels,
    batch norm, ReLU, 2x2 average pool, linear (what the training tests train)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, num_classes)
    )


@pytest.fixture
def tiny_cnn() -> Callable[..., nn.Module]:
    """`make_tiny_cnn`, for tests that build one or several (``tiny_cnn()``, ``tiny_cnn(seed=2)``)."""
    return make_tiny_cnn
