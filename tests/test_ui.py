"""What a user watching a run sees: progress inside a training epoch (log lines and the Prefect
progress artifact) and steps whose scores all came from the store shown as complete."""

from __future__ import annotations

import logging
import re
from typing import Any
from uuid import UUID

import pytest

from tasks.config import load_config

OVERRIDES = ["space.min_depth=4", "space.max_depth=4", "data.max_items=200", "data.proxy_batch=16", "evaluation.proxies=[params]"]


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _config(tmp_path, *more: str) -> Any:
    return load_config(None, [*OVERRIDES, f"runs_root={tmp_path}", *more])


def _sample(cfg: Any, n: int) -> list[str]:
    import numpy as np

    from tasks.spaces import base_space_dict, space_from_dict

    space, rng = space_from_dict(base_space_dict(cfg.space)), np.random.default_rng(0)
    return [space.to_string(space.sample(rng)) for _ in range(n)]


def _finalist(cfg: Any) -> dict[str, Any]:
    from tasks.spaces import base_space_dict, space_from_dict

    space, arch = space_from_dict(base_space_dict(cfg.space)), _sample(cfg, 1)[0]
    return {"arch_id": space.arch_id(space.from_string(arch)), "arch": arch, "rank": 1, "fitness": 0.0}


def _train(cfg: Any, finalist: dict[str, Any], every_s: float) -> dict[str, Any]:
    from tasks.data_ref import DataRef
    from tasks.spaces import base_space_dict
    from tasks.training import train_result

    return train_result(finalist, base_space_dict(cfg.space), DataRef.of(cfg), cfg.training, cfg.seed, progress_every_s=every_s)


def _artifacts(flow_run_id: UUID, key: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key} in flow run {flow_run_id}"
    return found


@pytest.fixture
def ehnas_log() -> Any:
    """The messages of the ``ehnas`` logger (where progress goes outside a Prefect run)."""

    class Messages(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    logger, handler = logging.getLogger("ehnas"), Messages()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_training_logs_batches_images_per_second_and_eta_within_each_epoch(tmp_path, ehnas_log) -> None:
    cfg = _config(tmp_path, "training.epochs=2", "training.batch_size=32")
    finalist = _finalist(cfg)
    _train(cfg, finalist, every_s=0)  # outside a run: the ehnas logger, no artifact
    lines = [line for line in ehnas_log if line.startswith(f"train {finalist['arch_id']}: ")]
    steps = -(-160 // 32)  # 200 images, 20% held out for validation
    within = [line for line in lines if ", batch " in line]
    assert len(within) == 2 * (steps - 1)  # every batch but each epoch's last, whose speed is in the epoch line
    assert re.search(r": epoch 1/2, batch 1/5, \d+ images/s, ETA \d+(s|m\d\ds)$", within[0])
    epoch_lines = [line for line in lines if " done: " in line]
    assert len(epoch_lines) == 2 and all(re.search(r"val acc [\d.]+, \d+ images/s", line) for line in epoch_lines)
    ehnas_log.clear()
    _train(_config(tmp_path, "training.epochs=1", "training.batch_size=32"), finalist, every_s=1e9)
    assert not [line for line in ehnas_log if ", batch " in line]  # an interval no epoch reaches: the epoch line only
    assert sum(" done: " in line for line in ehnas_log) == 1


@pytest.mark.slow
def test_training_progress_artifact_follows_the_batches(tmp_path, harness) -> None:
    from prefect import flow
    from prefect.runtime import flow_run

    cfg = _config(tmp_path, "training.epochs=1", "training.batch_size=32")
    finalist = _finalist(cfg)

    @flow
    def train_one() -> str:
        _train(cfg, finalist, every_s=0)
        return str(flow_run.id)

    [artifact] = _artifacts(UUID(train_one()), f"train-{finalist['arch_id']}")
    assert artifact.type == "progress" and float(artifact.data) == 100.0
    assert re.search(r"epoch 1/1 done: .*images/s", artifact.description)


@pytest.mark.slow
def test_scores_all_from_the_store_show_the_step_complete(tmp_path, harness) -> None:
    from prefect import flow
    from prefect.runtime import flow_run

    from flows.stages import Evaluation, score_in_batches
    from nas_lib.evaluation import EvaluationStore
    from tasks.evaluation import Scoring
    from tasks.spaces import base_space_dict

    cfg = _config(tmp_path)
    archs = _sample(cfg, 3)
    ev = Evaluation(EvaluationStore(tmp_path / "store.sqlite"), Scoring.of(cfg), base_space_dict(cfg.space), 2, ["cpu"], "t")

    @flow
    def score() -> str:
        score_in_batches(ev, archs, "population")
        return str(flow_run.id)

    computed, from_store = UUID(score()), UUID(score())
    assert [float(a.data) for a in _artifacts(computed, "t-population-progress")] == [100.0]
    [artifact] = _artifacts(from_store, "t-population-progress")
    assert float(artifact.data) == 100.0 and "all 3 scores read from the store" in artifact.description


@pytest.mark.slow
def test_table_artifacts_put_numbers_first_and_the_architecture_last(harness) -> None:
    import json

    from prefect import flow
    from prefect.runtime import flow_run

    from tasks import ui

    row = {"generation": 1, "arch_id": "a1", "arch": "sequential:cnn(planes=16) > " * 8, "fitness": 0.5, "state": "ok", "params": 1e5}

    @flow
    def show() -> str:
        ui.table("t-top-k", [row], "top 1")
        return str(flow_run.id)

    [artifact] = _artifacts(UUID(show()), "t-top-k")
    shown = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert list(shown[0]) == ["generation", "fitness", "params", "arch_id", "state", "arch"]
