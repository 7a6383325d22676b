"""Real runs of the comparison (nas_lib.bench.simulate.real, benchmarks/real_runs.py): the
training objective reproduces the table it replaces, charges what the table recorded, and a
killed real run resumes from its own lines."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ehnas.cli import app
from nas_lib.bench.simulate import CurveTable, PoolMapper, load_curve_table, make_method, run_method
from nas_lib.bench.simulate.real import TrainingObjective
from nas_lib.bench.train import build_space, load_protocol_data, read_protocol, read_rows
from tests.test_bench_train import _npz_with_test_split

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread, as the real runs use: tiny networks on two threads spend their time in
    the threads' hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-row table of 3-epoch curves with a test split, trained by `ehnas bench train`."""
    folder = tmp_path_factory.mktemp("real")
    data = _npz_with_test_split(folder / "d.npz")
    out = folder / "t.csv"
    args = ["bench", "train", "--out", str(out), "--n", "4", "--set", f"training.epochs={EPOCHS}", "--set", "space.max_depth=5"]
    args += ["--set", "data.kind=cifar10_npz", "--set", f"data.path={data}", "--patience", str(EPOCHS), "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def _objective(path: Path, table: CurveTable, seed: int, budget: float = 1e9) -> TrainingObjective:
    protocol = read_protocol(path)
    space, data = build_space(protocol.space), load_protocol_data(protocol)
    return TrainingObjective(table, table.rows(), budget, space=space, data=data, protocol=protocol.rung_protocol(seed))


def test_with_the_tables_seed_real_training_reproduces_its_curves_and_promotion_continues(trained: Path) -> None:
    table = load_curve_table(trained)
    objective = _objective(trained, table, seed=0)
    row = int(table.rows()[0])
    first = objective.evaluate(row, 1)
    last = objective.evaluate(row, EPOCHS)  # continued from epoch 1, not restarted
    assert first == pytest.approx(table.curves[row, 0], abs=1e-4)
    np.testing.assert_allclose(objective.curves[row], table.curves[row], atol=1e-4)
    assert last == objective.value(row, EPOCHS)
    assert objective.spent == pytest.approx(table.seconds[row])  # the table's seconds are charged, not the real ones
    assert objective.wall > 0 and objective.incumbent() == row


def test_another_training_seed_gives_other_curves_and_the_winner_its_own_test_score(trained: Path) -> None:
    table = load_curve_table(trained)
    objective = _objective(trained, table, seed=1)
    rows = [int(r) for r in table.rows()]
    for r in rows:
        objective.evaluate(r, 1)
    assert not np.allclose(objective.curves[rows, 0], table.curves[rows, 0])
    winner = objective.incumbent()
    assert winner is not None and np.isnan(objective.curves[winner, EPOCHS - 1])
    score = objective.report(winner)  # continued to the full epochs, uncharged
    assert 0 <= score <= 1 and not np.isnan(objective.curves[winner, EPOCHS - 1])
    assert objective.spent == pytest.approx(float(table.seconds[rows].sum()) / EPOCHS)


def test_run_method_scores_a_real_winner_within_the_simulated_budget(trained: Path) -> None:
    table = load_curve_table(trained)
    pool = table.rows()
    budget = 0.5 * float(table.seconds[pool].sum())
    made: list[TrainingObjective] = []

    def factory(t: CurveTable, rows: object, b: float) -> TrainingObjective:
        made.append(objective := _objective(trained, t, seed=1, budget=b))
        return objective

    run = run_method(make_method("random_sh"), table, pool, budget, 0, PoolMapper(table.archs), factory)
    assert run.row in pool and 0 <= run.score <= 1 and run.spent <= budget
    assert run.val == made[0].value(run.row, max(made[0].trained.values()))


def test_real_runs_script_appends_one_line_per_method_and_seed_and_resumes(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "real.jsonl"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "real_runs.py"), "--table", str(trained), "--half", "all", "--pool", "3"]
    cmd += ["--budgets", "0.5", "--seeds", "2", "--methods", "random_sh", "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert first.returncode == 0, first.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["seed"], r["method"]) for r in lines] == [(0, "random_sh"), (1, "random_sh")]
    arch = {r["arch"]: r for r in read_rows(trained)}
    for r in lines:
        assert r["real_arch"] in arch and r["charged_s"] <= r["budget_s"] and 0 <= r["real_score"] <= 1
        assert r["two_seed_score"] == pytest.approx((r["real_score"] + float(arch[r["real_arch"]]["test_accuracy"])) / 2)
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 0 and again.stdout == "" and len(out.read_text().splitlines()) == 2  # nothing retrained
    shown = subprocess.run([*cmd[:4], "--summary", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert shown.returncode == 0 and "random_sh" in shown.stdout and "real - sim" in shown.stdout


def test_real_runs_script_answers_bad_input_with_a_usage_error_and_tolerates_a_torn_last_line(trained: Path, tmp_path: Path) -> None:
    script = [sys.executable, str(ROOT / "benchmarks" / "real_runs.py")]
    missing = subprocess.run([*script, "--table", str(tmp_path / "none.csv")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert missing.returncode == 2 and "protocol.json beside it" in missing.stderr
    unknown = subprocess.run([*script, "--table", str(trained), "--methods", "nosuch"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert unknown.returncode == 2 and "unknown nosuch; known: ehnas" in unknown.stderr
    good = json.dumps({"budget_fraction": "0.5", "seed": 0, "method": "random_sh"})
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text('{"budget\n' + good + "\n")
    shown = subprocess.run([*script, "--table", str(trained), "--summary", str(damaged)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert shown.returncode == 2 and "line 1: not a JSON line" in shown.stderr
    torn = tmp_path / "torn.jsonl"
    torn.write_text(good + '\n{"budget_fra')  # killed while writing its last line
    run = real_runs_module()
    assert run["done_keys"](torn) == {("0.5", 0, "random_sh")}


def real_runs_module() -> dict[str, object]:
    import runpy

    return runpy.run_path(str(ROOT / "benchmarks" / "real_runs.py"), run_name="real_runs")
