"""Finalist training reads the test part only when asked, and scores ROC curves on validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nas_lib.evaluation_curves import roc_curves
from tests.test_idx import write_idx_pair

CNN = " > ".join(
    ["sequential:cnn(planes=16,stride=2,cardinality=1,base_width=32)"] + ["residual:cnn(planes=16,stride=1,cardinality=1,base_width=32)"] * 3
)


def test_roc_curves_of_a_perfect_and_a_useless_score() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    perfect = np.eye(3)[labels]
    assert roc_curves(labels, perfect, "abc")["macro_auc"] == pytest.approx(1.0)
    flat = np.full((6, 3), 1 / 3)
    curves = roc_curves(labels, flat, "abc")
    assert curves["macro_auc"] == pytest.approx(0.5) and [c["name"] for c in curves["classes"]] == ["a", "b", "c"]
    assert roc_curves(np.zeros(4, int), np.ones((4, 2)) / 2, "xy")["classes"][1]["auc"] is None  # class y never occurs


@pytest.mark.parametrize("with_test", [False, True])
def test_finalist_row_has_test_accuracy_only_when_asked(tmp_path: Path, with_test: bool) -> None:
    from flows.stages import save_finalist
    from tasks.config import PipelineConfig
    from tasks.data_ref import DataRef
    from tasks.run_folder import RunFolder
    from tasks.training import train_result

    rng = np.random.default_rng(0)
    labels = np.arange(60, dtype=np.uint8) % 3
    images = (labels[:, None, None] * 80 + rng.integers(0, 40, (60, 8, 8))).astype(np.uint8)  # separable by brightness
    write_idx_pair(tmp_path / "d", "train", images, labels)
    write_idx_pair(tmp_path / "d", "t10k", images[:15], labels[:15])
    config = PipelineConfig(
        runs_root=str(tmp_path / "runs"),
        data={"kind": "idx", "path": str(tmp_path / "d"), "test": with_test},
        training={"epochs": 1, "batch_size": 16},
    )
    run = RunFolder.create(config)
    run_dir = run.root
    result = train_result(
        {"arch_id": "c1", "arch": CNN, "rank": 1, "fitness": 1.0},
        run.space_dict(),
        DataRef.of(config),
        config.training,
        config.seed,
        with_test=config.data.test,
    )
    row = save_finalist(run, result)
    assert row["state"] == "ok" and 0.0 <= row["macro_auc"] <= 1.0
    curves = json.loads((run_dir / "finalists" / "c1.roc.json").read_text())
    assert len(curves["classes"]) == 3 and (run_dir / "plots" / "roc-c1.png").stat().st_size > 1000
    if with_test:
        assert row["test_size"] == 15 and 0.0 <= row["test_accuracy"] <= 1.0
    else:
        assert "test_accuracy" not in row
