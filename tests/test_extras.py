"""Issue 22 item 1: a missing optional dependency (onnx, dask, ray) is one usage line naming its extra.

Each case runs the real `ehnas` in a child process whose `sitecustomize` makes the extra's
modules unimportable, as on a machine where the extra was never installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ehnas.exit_codes import ExitCode
from tests.test_edge_config import ROOT, flat

# Loaded by the child interpreter: every module named in EHNAS_TEST_BLOCK (and its submodules) fails to import.
BLOCK_HOOK = """
import os, sys
BLOCKED = tuple(os.environ.get("EHNAS_TEST_BLOCK", "").split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def _ehnas(args: list[str], cwd: Path, blocked: str) -> subprocess.CompletedProcess[str]:
    hook = cwd / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(BLOCK_HOOK, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{hook}", "PREFECT_HOME": str(cwd / ".prefect"), "EHNAS_TEST_BLOCK": blocked}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "ehnas.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def _written(cwd: Path) -> list[str]:
    return sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*") if not p.is_relative_to(cwd / "hook"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("blocked", "args", "subject"),
    [
        ("onnx", ["export", "runs/absent", "--format", "all", "--out", "export"], "ehnas export --format all"),
        ("onnxruntime", ["export", "runs/absent", "--format", "onnx", "--out", "export"], "ehnas export --format onnx"),
        ("onnx", ["run", "--set", "export.formats=[onnx]", "--set", "registry.enabled=false"], "export.formats with onnx"),
        ("distributed", ["run", "--set", "execution.runner=dask", "--set", "registry.enabled=false"], "execution.runner=dask"),
        ("ray", ["run", "--set", "execution.runner=ray", "--set", "registry.enabled=false"], "execution.runner=ray"),
    ],
)
def test_missing_extra_is_one_usage_line(tmp_path: Path, blocked: str, args: list[str], subject: str) -> None:
    extra = {"onnxruntime": "onnx", "distributed": "dask"}.get(blocked, blocked)
    done = _ehnas(args, tmp_path, blocked)
    out = flat(done.stdout + done.stderr)
    assert done.returncode == ExitCode.USAGE, out
    assert re.search(rf"{re.escape(subject)} needs the \[{extra}\] extra \(missing: [^)]*\b{blocked}\b", out), out
    assert f"pip install -e '.[{extra}]'" in out, out
    assert "Traceback" not in done.stderr and done.stdout == ""
    boxed = [line for line in done.stderr.splitlines() if line.strip("│╭╮╰╯─ ")]
    assert len(boxed) <= 3, done.stderr  # the box's title and the message (wrapped at most once)
    assert _written(tmp_path) == [], "nothing may be written before the check"


def test_installed_extras_pass_the_check(tmp_path: Path) -> None:
    from nas_lib.extras import missing_extra

    assert missing_extra("onnx", "x") is None  # the test environment installs every extra
    assert "needs the [onnx] extra (missing: ehnas_absent)" in (missing_extra("onnx", "x", ["ehnas_absent"]) or "")
