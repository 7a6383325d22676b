"""Append-only JSON-lines result files (`nas_lib.artifacts`), as the benchmarks keep them: a run
killed mid-line leaves a torn tail that is dropped on read and cut off before the next append;
a damaged line before the end is an error that names it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nas_lib.artifacts import append_json_line, read_json_lines

ROOT = Path(__file__).resolve().parents[1]


def test_lines_append_and_read_back(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    assert read_json_lines(out) == []
    append_json_line(out, {"a": 1})
    append_json_line(out, {"b": [2, 3]})
    assert read_json_lines(out) == [{"a": 1}, {"b": [2, 3]}]


def test_a_torn_last_line_is_dropped_then_cut_before_the_next_append(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps({"a": 1}) + "\n" + '{"b": 2, "c"')  # killed while writing line 2
    assert read_json_lines(out) == [{"a": 1}]
    append_json_line(out, {"d": 4})
    assert out.read_text() == '{"a": 1}\n{"d": 4}\n'
    out.write_text('{"only": ')  # a torn first line
    append_json_line(out, {"e": 5})
    assert read_json_lines(out) == [{"e": 5}]


def test_a_damaged_line_before_the_end_is_an_error_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(ValueError, match="line 2: not a JSON line"):
        read_json_lines(out)


def test_oneshot_benchmark_refuses_a_damaged_results_file_and_leaves_it(tmp_path: Path) -> None:
    out = tmp_path / "oneshot.jsonl"
    text = '{"a": 1}\n{broken\n{"b": 2}\n'
    out.write_text(text)
    table = ROOT / "data" / "tables" / "hybrid_cifar10_v2.csv"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "oneshot_hybrid.py"), "--table", str(table), "--out", str(out), "--summary"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "line 2: not a JSON line" in done.stderr and "Traceback" not in done.stderr
    assert out.read_text() == text
