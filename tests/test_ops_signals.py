"""SIGINT and SIGTERM stop a real `ehnas run` cleanly (issue 22): the hung training is cancelled,
the ledger names the step, the temporary Prefect server stops last, the exit code is 130 / 143,
and `ehnas resume` continues from that step.

Finalist training hangs through `tests/assets/hang_training/sitecustomize.py`, which also marks
the moment training started, so each signal surely lands during step 08_training.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ehnas.exit_codes import ExitCode
from tests.test_edge_config import ROOT, flat

HANG = ROOT / "tests" / "assets" / "hang_training"


def _env(tmp_path: Path, hang: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "PREFECT_HOME", "MLFLOW_TRACKING", "EHNAS_TEST"))}
    env.update(PYTHONPATH=os.pathsep.join([str(HANG), str(ROOT)] if hang else [str(ROOT)]), PREFECT_HOME=str(tmp_path / ".prefect"))
    if hang:
        env["EHNAS_TEST_HANG_MARK"] = str(tmp_path / "training-started")
    return env


def _stopped_during_training(args: list[str], tmp_path: Path, signum: int) -> tuple[int, str]:
    """Starts `ehnas ARGS` with training made to hang, sends `signum` once training runs; returns
    the exit code and the output."""
    mark = tmp_path / "training-started"
    mark.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ehnas.cli", *args],
        cwd=tmp_path,
        env=_env(tmp_path, hang=True),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not mark.exists():
            assert proc.poll() is None, f"ehnas exited ({proc.returncode}) before training:\n{proc.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.2)  # polling for the mark, not timing anything
        os.kill(proc.pid, signum)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out


@pytest.mark.slow
def test_signals_stop_the_run_cleanly_and_resume_continues(tmp_path: Path, tiny_overrides: list[str]) -> None:
    run_dir = tmp_path / "runs" / "sig"
    sets = [arg for item in tiny_overrides for arg in ("--set", item)]

    code, out = _stopped_during_training(["run", "--run-name", "sig", *sets], tmp_path, signal.SIGINT)
    text = flat(out)
    assert code == ExitCode.INTERRUPTED == 130, out[-4000:]
    assert "run interrupted by SIGINT in step 08_training; `ehnas resume sig` continues from there" in text, out[-4000:]
    assert "ConnectError" not in out and "Traceback" not in out, out[-4000:]
    ledger = json.loads((run_dir / "steps.json").read_text())
    assert ledger["interrupted"]["step"] == "08_training" and ledger["interrupted"]["signal"] == "SIGINT"
    assert "07_search" in ledger and "08_training" not in ledger
    assert not list((tmp_path / ".prefect" / "ehnas-servers").glob("*.json"))  # the server was stopped, not left
    trainer = int((tmp_path / "training-started").read_text())  # the child process that trained (tasks/child.py)
    with pytest.raises(ProcessLookupError):
        os.kill(trainer, 0)  # killed with the run, not left training

    code, out = _stopped_during_training(["resume", "sig"], tmp_path, signal.SIGTERM)
    assert code == ExitCode.TERMINATED == 143, out[-4000:]
    assert "07_search: finished earlier, reusing" in out  # resumed: only training ran again
    assert "run interrupted by SIGTERM in step 08_training" in flat(out) and "ConnectError" not in out, out[-4000:]
    assert json.loads((run_dir / "steps.json").read_text())["interrupted"]["signal"] == "SIGTERM"

    done = subprocess.run(
        [sys.executable, "-m", "ehnas.cli", "resume", "sig"],
        cwd=tmp_path,
        env=_env(tmp_path, hang=False),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == ExitCode.OK, (done.stdout + done.stderr)[-4000:]
    ledger = json.loads((run_dir / "steps.json").read_text())
    assert "interrupted" not in ledger and "09_registry" in ledger
