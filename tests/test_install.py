"""The install: one Python floor that every tool agrees on, and a lock that matches pyproject.toml.

`make setup` installs `requirements.lock` exactly (docs/install.md); these tests fail when the
lock and pyproject.toml drift apart (a dependency added without `make lock`), and when the floor
is stated one way and enforced another.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCK = ROOT / "requirements.lock"


def requirements() -> list[Requirement]:
    """The project's dependencies and those of every extra."""
    project = PYPROJECT["project"]
    return [Requirement(r) for r in project["dependencies"] + sum(project["optional-dependencies"].values(), [])]


def locked() -> dict[str, str]:
    """Package name -> pinned version, from the lock's `name==version` lines."""
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", LOCK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def floor() -> tuple[int, int]:
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    (lower,) = [s for s in spec if s.operator == ">="]
    major, minor = lower.version.split(".")[:2]
    return int(major), int(minor)


def test_the_running_interpreter_satisfies_requires_python() -> None:
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(platform.python_version())


def test_ruff_and_mypy_target_the_floor() -> None:
    major, minor = floor()
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py{major}{minor}"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == f"{major}.{minor}"


@pytest.fixture
def python_3_10(tmp_path: Path) -> Path:
    """An interpreter that reports 3.10: it answers --version and runs -c programs with 3.10's version_info."""
    fake = tmp_path / "python3.10"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "Python 3.10.13"; exit 0; fi\n'
        f'exec {sys.executable} -c "import sys; sys.version_info = (3, 10, 13, \'final\', 0); exec(sys.argv[1])" "$2"\n',
        encoding="utf-8",
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def make_check_python(python: Path | str) -> subprocess.CompletedProcess[str]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(["make", "-s", "check-python", f"PYTHON={python}"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)


def test_make_refuses_an_older_python_and_says_which_it_needs(python_3_10: Path) -> None:
    result = make_check_python(python_3_10)
    assert result.returncode != 0
    assert f"needs Python >= {floor()[0]}.{floor()[1]}" in result.stderr and "Python 3.10.13" in result.stderr


def test_make_accepts_the_running_interpreter() -> None:
    result = make_check_python(sys.executable)
    assert result.returncode == 0, result.stderr


def test_the_lock_pins_every_dependency_within_its_bounds_and_leaves_torch_out() -> None:
    pins = locked()
    for req in requirements():
        name = canonicalize_name(req.name)
        if name == "torch":
            continue
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"requirements.lock pins {name}=={pins[name]}, outside {req}"
    assert "torch" not in pins, "torch is installed by the Makefile from the machine's own source (docs/install.md)"


def test_every_lock_line_carries_hashes() -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", LOCK.read_text(encoding="utf-8"))
    pinned = [b for b in blocks if re.match(r"[A-Za-z0-9_.\-]+==", b)]
    assert pinned and all("--hash=sha256:" in b for b in pinned)
