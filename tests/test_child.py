"""Work in a child process (tasks/child.py): a hang is killed at its limit and not retried, a
training through the child gives the in-process result and still reports progress (issue 22)."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ehnas.exit_codes import ExitCode
from tasks.child import HANG_ENV, ChildTimeout, run_in_child
from tasks.retry import is_transient
from tests.test_datasets_training import CNN
from tests.test_edge_config import ROOT, flat
from tests.test_idx import write_idx_pair


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_hung_child_is_killed_at_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HANG_ENV, "test.limit_s")
    with pytest.raises(ChildTimeout, match=r"hang-test ran past test\.limit_s = 1 s; its process \(pid \d+\) was killed") as caught:
        run_in_child(os.getpid, (), limit_s=1.0, key="test.limit_s", what="hang-test")
    assert caught.value.pid > 0 and _gone(caught.value.pid)
    assert not is_transient(caught.value)  # the retry policy refuses it
    again = pickle.loads(pickle.dumps(caught.value))  # Prefect stores the exception pickled
    assert type(again) is ChildTimeout and str(again) == str(caught.value) and not is_transient(again)


def test_a_child_returns_its_value_and_raises_its_error() -> None:
    pid = run_in_child(os.getpid, (), limit_s=None, key="k", what="w")
    assert pid != os.getpid() and _gone(pid)
    with pytest.raises(FileNotFoundError):
        run_in_child(os.stat, ("/no/such/path",), limit_s=60.0, key="k", what="w")


def child_pid_from_a_daemon(queue: Any) -> None:
    """Runs in a daemonic process, as a Dask nanny's worker does."""
    queue.put(run_in_child(os.getpid, (), limit_s=60.0, key="k", what="w"))


def test_a_daemonic_worker_may_start_the_child() -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    worker = ctx.Process(target=child_pid_from_a_daemon, args=(queue,), daemon=True)
    worker.start()
    try:
        pid = queue.get(timeout=300)  # an AssertionError in the worker would leave it empty
    finally:
        worker.join(60)
    assert worker.exitcode == 0 and pid != worker.pid and _gone(pid)


def _setup(tmp_path: Path) -> tuple[Any, ...]:
    from tasks.config import PipelineConfig
    from tasks.data_ref import DataRef
    from tasks.run_folder import RunFolder

    rng = np.random.default_rng(0)
    labels = np.arange(60, dtype=np.uint8) % 3
    images = (labels[:, None, None] * 80 + rng.integers(0, 40, (60, 8, 8))).astype(np.uint8)
    write_idx_pair(tmp_path / "d", "train", images, labels)
    write_idx_pair(tmp_path / "d", "t10k", images[:15], labels[:15])
    config = PipelineConfig(
        runs_root=str(tmp_path / "runs"), data={"kind": "idx", "path": str(tmp_path / "d")}, training={"epochs": 2, "batch_size": 16}
    )
    run = RunFolder.create(config)
    finalist = {"arch_id": "c1", "arch": CNN, "rank": 1, "fitness": 1.0}
    return finalist, run.space_dict(), DataRef.of(config), config.training, config.seed, False, "cpu", 0.0


def test_training_in_a_child_matches_in_process_and_sends_progress(tmp_path: Path) -> None:
    from tasks.training import train_in_child_body, train_result

    args = _setup(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = train_result(*args)
    finally:
        torch.set_num_threads(threads)
    events: list[Any] = []
    there = run_in_child(train_in_child_body, args, limit_s=600.0, key="k", what="w", on_event=events.append, torch_threads=1)
    assert there["row"]["state"] == here["row"]["state"] == "ok"
    for column in ("val_accuracy", "val_loss", "macro_f1", "macro_auc", "history", "class_scores", "epochs_run"):
        assert there["row"][column] == here["row"][column], column
    assert all(torch.equal(there["state_dict"][k], v) for k, v in here["state_dict"].items())
    kinds = [kind for kind, _ in events]
    assert kinds.count("epoch") == 2 and "batches" in kinds and kinds[-1] == "close"


@pytest.mark.slow
def test_a_hung_finalist_fails_the_run_with_the_limit_and_no_retry(tmp_path: Path, tiny_overrides: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "PREFECT_HOME", "MLFLOW_TRACKING", "EHNAS_TEST"))}
    env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp_path / ".prefect"), **{HANG_ENV: "execution.training_timeout_s"})
    sets = [arg for item in [*tiny_overrides, "execution.training_timeout_s=5"] for arg in ("--set", item)]
    done = subprocess.run(
        [sys.executable, "-m", "ehnas.cli", "run", "--run-name", "hang", *sets], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    out = done.stdout + done.stderr
    assert done.returncode == ExitCode.RUN_FAILED, out[-4000:]
    assert "ran past execution.training_timeout_s = 5 s" in flat(out), out[-4000:]
    assert "will start" not in out, out[-4000:]  # Prefect's "Retry 1/1 will start ..."
    pids = {int(p) for p in re.findall(r"its process \(pid (\d+)\) was killed", flat(out))}
    assert len(pids) == 1 and _gone(pids.pop())  # one child: a retry would have started a second
