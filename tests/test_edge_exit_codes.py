"""Issue 13 item 7: exit codes that mean something, documented, the same in `knowledge add`.

The end-to-end case runs the real `ehnas` console entry in child processes: a run crashed
inside a step exits 5 and names the step; resuming it registers the winner and exits 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ehnas.exit_codes import ExitCode
from tests.test_edge_config import ROOT, flat, invoke

DOCS = ROOT / "docs" / "pipeline.md"
# On top of the tiny config: registration on, and a first evaluation batch that the injected fault can cut.
CRASHABLE = ["run_name=t1", "registry.enabled=true", "population.size=4", "evaluation.batch_size=2", "evaluation.proxies=[params]"]


def test_codes_are_distinct_and_documented() -> None:
    assert len({int(c) for c in ExitCode}) == len(ExitCode) and ExitCode.OK == 0
    table = DOCS.read_text(encoding="utf-8")
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` |" in table, f"exit code {code.name} missing from the table in {DOCS.name}"


def test_knowledge_add_missing_path_exits_3(tmp_path: Path) -> None:
    code, out = invoke(["knowledge", "add", str(tmp_path / "absent.pdf"), "--out", str(tmp_path / "k"), "--provider", "offline"], tmp_path)
    assert code == ExitCode.DATA and "not found:" in out and "absent.pdf" in out
    assert not (tmp_path / "k").exists()
    (tmp_path / "empty").mkdir()
    code, out = invoke(["knowledge", "add", str(tmp_path / "empty"), "--out", str(tmp_path / "k"), "--provider", "offline"], tmp_path)
    assert code == ExitCode.DATA and "no PDF files under" in out


def test_knowledge_add_all_failed_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 truncated")
    code, out = invoke(["knowledge", "add", str(bad), "--out", str(tmp_path / "k"), "--provider", "offline"], tmp_path)
    assert code == ExitCode.DATA and "every document failed (1)" in out


# Loaded by the interpreter of the command under test (`sitecustomize` on its path): once
# `EHNAS_TEST_FAULT_AFTER` evaluations ran, the next one raises, as a crashing evaluation would.
FAULT_HOOK = """
import os
if os.environ.get("EHNAS_TEST_FAULT_AFTER"):
    import nas_lib.evaluation as ev
    real, calls, limit = ev.score_one, [0], int(os.environ["EHNAS_TEST_FAULT_AFTER"])
    def score_one(*args, **kwargs):
        calls[0] += 1
        if calls[0] > limit:
            raise RuntimeError("injected fault")
        return real(*args, **kwargs)
    ev.score_one = score_one
"""


def _ehnas(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    hook = cwd / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(FAULT_HOOK, encoding="utf-8")
    full = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{hook}", "PREFECT_HOME": str(cwd / ".prefect"), **env}
    full.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "ehnas.cli", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.slow
def test_step_failure_exits_5_and_resume_registers_with_0(tmp_path: Path, tiny_overrides: list[str]) -> None:
    sets = [arg for item in [*tiny_overrides, *CRASHABLE] for arg in ("--set", item)]
    crashed = _ehnas(["run", *sets], tmp_path, EHNAS_TEST_FAULT_AFTER="1")
    out = flat(crashed.stdout + crashed.stderr)
    assert crashed.returncode == ExitCode.RUN_FAILED == 5, out[-3000:]
    assert "run failed in step 06_evaluations: RuntimeError: injected fault" in out and "ehnas resume t1" in out
    # issue 22 item 3: the box alone on the terminal, Prefect's tracebacks in the run's log file
    log = tmp_path / "runs" / "t1" / "ehnas.log"
    assert "(traceback in runs/t1/ehnas.log)" in out
    assert "Traceback" not in crashed.stderr and "injected fault" in log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log.read_text(encoding="utf-8")
    lines = crashed.stderr.splitlines()
    failure = lines[next(i for i, line in enumerate(lines) if "| ERROR" in line or "╭" in line) :]
    assert len(failure) < 15, crashed.stderr[-4000:]  # from the first error to the end: a few state lines and the box
    resumed = _ehnas(["resume", "t1"], tmp_path)
    out = flat(resumed.stdout + resumed.stderr)
    assert resumed.returncode == ExitCode.OK, out[-3000:]
    assert "registered model: ehnas-digits v1 @champion" in out
