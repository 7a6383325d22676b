"""Shared test settings: Prefect and MLflow stay local, quiet and inside a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
