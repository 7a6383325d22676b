"""The static view of `nas_lib.steps.Step` (what mypy checks against) names the same fixed steps as
the run-time enum, so a step added to `_BEFORE`/`_AFTER` cannot be missed by the type checker."""

from __future__ import annotations

import ast
from pathlib import Path

from nas_lib import steps


def _static_members() -> list[str]:
    tree = ast.parse(Path(steps.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Step":
            return [t.id for stmt in node.body if isinstance(stmt, ast.Assign) for t in stmt.targets if isinstance(t, ast.Name)]
    raise AssertionError("nas_lib/steps.py has no static `class Step` for type checkers")


def test_static_step_members_are_the_fixed_steps() -> None:
    fixed = [name.upper() for name in (*steps._BEFORE, *steps._AFTER)]
    assert _static_members() == fixed


def test_every_static_member_is_a_runtime_step() -> None:
    runtime = {member.name for member in steps.Step}
    assert set(_static_members()) <= runtime and len(runtime) > len(_static_members())
