"""Tabular multi-fidelity simulation (nas_lib.bench.simulate) and its paired statistics."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from nas_lib.bench.paired import mean_se, min_detectable_difference, paired_difference
from nas_lib.bench.simulate import (
    METHODS,
    BudgetExhausted,
    CurveTable,
    PoolMapper,
    TabularObjective,
    load_curve_table,
    make_method,
    run_method,
)
from nas_lib.bench.simulate.features import ChoiceSpace, parse_blocks
from nas_lib.bench.simulate.methods import default_rungs
from nas_lib.bench.train import COLUMNS, build_space, read_protocol

TABLES = Path(__file__).resolve().parents[1] / "data" / "tables"
E4 = TABLES / "hybrid_mnist14_e4.csv"


@pytest.fixture(scope="module")
def table() -> CurveTable:
    """24 sampled archs plus one reference row; 4-epoch curves rising to an arch-dependent level."""
    space_json = read_protocol(E4).space
    space = build_space(space_json)
    rng = np.random.default_rng(0)
    archs: list[str] = []
    while len(archs) < 24:
        arch = space.to_string(space.sample(rng))
        if arch not in archs:
            archs.append(arch)
    archs.append(archs[0].replace("parallel:", "residual:"))  # a reference row; its own arch string
    final = rng.uniform(0.5, 0.9, len(archs))
    curves = final[:, None] * np.array([0.4, 0.7, 0.9, 1.0])[None, :]
    return CurveTable(
        archs=tuple(archs),
        curves=curves,
        seconds=rng.uniform(10, 50, len(archs)),
        params=rng.uniform(1e4, 1e5, len(archs)),
        flops=rng.uniform(1e6, 1e7, len(archs)),
        score=final - 0.01,
        roles=tuple(["sample"] * 24 + ["reference"]),
        space=space_json,
    )


def test_the_design_and_report_halves_split_the_sample_rows_and_leave_out_references(table: CurveTable) -> None:
    design, report = table.half("design"), table.half("report")
    assert len(design) == len(report) == 12
    assert not set(design) & set(report)
    assert sorted([*design, *report]) == list(table.rows()) == list(table.half("all"))
    assert 24 not in design and 24 not in report  # the reference row
    with pytest.raises(KeyError, match="design, report"):
        table.half("test")


def test_first_rows_keep_a_prefix_of_the_table_so_a_grown_table_halves_the_same_way(table: CurveTable) -> None:
    assert list(table.half("all", 10)) == list(table.rows()[:10])
    assert list(table.half("report", 10)) == list(table.rows()[1:10:2])
    assert list(table.half("design", 24)) == list(table.half("design"))
    for bad in (0, 25):
        with pytest.raises(ValueError, match="1..24"):
            table.half("all", bad)


def test_evaluation_charges_the_epochs_trained_and_continuation_only_the_difference(table: CurveTable) -> None:
    obj = TabularObjective(table, range(24), budget=1e9)
    s = table.seconds[3]
    assert obj.evaluate(3, 1) == table.curves[3, 0]
    assert obj.spent == pytest.approx(s / 4)
    assert obj.evaluate(3, 3) == table.curves[3, 2]
    assert obj.spent == pytest.approx(3 * s / 4)  # promoted 1 -> 3: two more epochs
    obj.evaluate(3, 2)  # an epoch already passed is a free lookup
    assert obj.spent == pytest.approx(3 * s / 4)
    assert [e.cost for e in obj.log] == pytest.approx([s / 4, s / 2, 0.0])


def test_an_evaluation_that_overruns_the_budget_is_refused_and_charges_nothing(table: CurveTable) -> None:
    obj = TabularObjective(table, range(24), budget=table.seconds[0] + 1e-6)
    obj.evaluate(0, 4)
    with pytest.raises(BudgetExhausted):
        obj.evaluate(1, 1)
    assert obj.spent == pytest.approx(table.seconds[0])
    assert 1 not in obj.trained


def test_rows_outside_the_pool_and_budgets_outside_1_to_E_are_rejected(table: CurveTable) -> None:
    obj = TabularObjective(table, [0, 1], budget=1e9)
    with pytest.raises(KeyError):
        obj.evaluate(2, 1)
    with pytest.raises(ValueError, match="outside 1..4"):
        obj.evaluate(0, 5)


def test_the_incumbent_is_the_best_row_at_the_largest_budget_reached(table: CurveTable) -> None:
    obj = TabularObjective(table, range(24), budget=1e9)
    assert obj.incumbent() is None
    best_low = int(np.argmax(table.curves[:24, 0]))
    for row in range(24):
        obj.evaluate(row, 1)
    assert obj.incumbent() == best_low
    other = (best_low + 1) % 24
    obj.evaluate(other, 2)
    assert obj.incumbent() == other  # one row at budget 2 beats every row at budget 1


def test_default_rungs_are_one_over_eta_of_the_epochs_and_all_of_them() -> None:
    assert default_rungs(12, 2) == (6, 12)
    assert default_rungs(12, 3) == (4, 12)
    assert default_rungs(4, 2) == (2, 4)
    assert default_rungs(2, 3) == (2,)  # no rung below one epoch


def _pool(table: CurveTable) -> np.ndarray:
    return np.arange(0, 24, 2)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_answers_a_row_it_may_train_within_budget_and_repeats_per_seed(table: CurveTable, name: str) -> None:
    for package in METHODS.get(name).requires:
        pytest.importorskip(package)
    mapper = PoolMapper(table.archs)
    pool = _pool(table)
    budget = 0.4 * float(table.seconds[pool].sum())
    first = run_method(make_method(name), table, pool, budget, 7, mapper)
    again = run_method(make_method(name), table, pool, budget, 7, mapper)
    allowed = set(table.rows("reference")) if name == "reference_cnn" else set(pool)
    assert first.row in allowed
    assert first.spent <= budget * (1 + 1e-9)
    assert first.score == table.score[first.row]
    assert (first.row, first.spent, first.evaluations) == (again.row, again.spent, again.evaluations)


def test_k_largest_trains_the_largest_rows_first_to_full_budget(table: CurveTable) -> None:
    pool = _pool(table)
    order = pool[np.argsort(-table.params[pool])]
    budget = float(table.seconds[order[:3]].sum()) + 1e-6
    run = run_method(make_method("k_largest"), table, pool, budget, 0, PoolMapper(table.archs))
    assert run.full_trainings == 3
    assert run.row == order[:3][np.argmax(table.curves[order[:3], -1])]


def test_the_ehnas_prefilter_confines_the_search_to_the_largest_rows(table: CurveTable) -> None:
    pool = _pool(table)
    largest = set(pool[np.argsort(-table.params[pool])][:3])
    method = make_method("ehnas", keep=0.25, budgets=(1, 2, 4), eta=2, refill=False)
    run = run_method(method, table, pool, 1e9, 0, PoolMapper(table.archs))
    assert run.row in largest
    assert run.evaluations == 3 + 1 + 1  # bracket of 3 -> 1 -> 1, then nothing is left


def test_with_refill_ehnas_admits_the_next_largest_rows_once_the_kept_ones_are_spent(table: CurveTable) -> None:
    pool = _pool(table)  # 12 rows: keep 0.25 admits them 3 at a time
    evaluations = [
        run_method(
            make_method("ehnas", keep=0.25, budgets=(1, 2, 4), eta=2, refill=refill, draw="proxy"), table, pool, 1e9, 0, PoolMapper(table.archs)
        ).evaluations
        for refill in (False, True)
    ]
    assert evaluations == [5, 4 * 5]  # one chunk, or all four, each a 3 -> 1 -> 1 bracket


def test_with_predicted_fitness_the_strategy_is_told_top_rung_scores(table: CurveTable) -> None:
    from nas_lib.bench.simulate.base import SimContext
    from nas_lib.bench.simulate.methods import _StrategyProposer
    from nas_lib.bench.simulate.objective import TabularObjective

    pool = np.arange(24)
    objective = TabularObjective(table, pool, 1e9)
    ctx = SimContext(table, pool, objective, PoolMapper(table.archs), np.random.default_rng(0), 0)
    for row in range(10):  # ten rows trained to the top rung (4), four stopped at rung 1
        objective.evaluate(row, 4)
    for row in range(10, 14):
        objective.evaluate(row, 1)
    proposer = _StrategyProposer(ctx, "rea", 4, predict_rungs=(1, 2, 4), min_rows=6)
    told = proposer.predicted(list(range(14)))
    assert all(told[r] == table.curves[r, 3] for r in range(10))  # trained: the top-rung score
    assert all(told[r] != table.curves[r, 0] and math.isfinite(told[r]) for r in range(10, 14))  # predicted, not the epoch-1 score
    with pytest.raises(ValueError, match="use first or predicted"):
        run_method(make_method("ehnas", fitness="best"), table, pool, 1e9, 0, PoolMapper(table.archs))


def test_the_mapper_returns_an_exact_row_at_distance_zero_and_skips_excluded_rows(table: CurveTable) -> None:
    mapper = PoolMapper(table.archs)
    assert mapper.nearest(parse_blocks(table.archs[5]), range(24)) == (5, 0.0)
    row, distance = mapper.nearest(parse_blocks(table.archs[5]), [r for r in range(24) if r != 5])
    assert row != 5 and distance > 0


def test_choice_space_builds_the_blocks_a_chooser_picks(table: CurveTable) -> None:
    choices = ChoiceSpace.from_space(build_space(table.space))
    blocks = choices.blocks(lambda name, options: options[0])
    assert len(blocks) == choices.depths[0]
    assert all(b[0] == choices.families[0] for b in blocks)
    assert {n for n, _ in choices.flat()} >= {"depth", "b0_type", f"b0_{choices.families[0]}_{choices.fields[choices.families[0]][0][0]}"}


def _write_table(path: Path, rows: list[dict[str, object]]) -> None:
    shutil.copy(E4.with_name(E4.name + ".protocol.json"), path.with_name(path.name + ".protocol.json"))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*COLUMNS, "test_accuracy", "role"])
        writer.writeheader()
        writer.writerows(rows)


def _rows(archs: list[str], test: list[float]) -> list[dict[str, object]]:
    history = json.dumps([0.1, 0.2, 0.3, 0.4])
    return [
        dict(
            arch=a,
            arch_id=str(i),
            depth=4,
            params=1,
            flops=1,
            val_accuracy=0.4,
            history=history,
            seconds=8,
            state="ok",
            error="",
            train_seed=0,
            test_accuracy=t,
            role="sample",
        )
        for i, (a, t) in enumerate(zip(archs, test))
    ]


def test_the_score_is_test_accuracy_averaged_over_a_covering_seed1_table(tmp_path: Path) -> None:
    archs = list(load_curve_table(E4).archs[:3])
    _write_table(tmp_path / "t.csv", _rows(archs, [0.5, 0.6, 0.7]))
    _write_table(tmp_path / "t_seed1.csv", _rows(archs, [0.7, 0.6, 0.5]))
    _write_table(tmp_path / "short_seed1.csv", _rows(archs[:2], [0.7, 0.6]))
    assert load_curve_table(tmp_path / "t.csv").score.tolist() == [0.5, 0.6, 0.7]
    both = load_curve_table(tmp_path / "t.csv", tmp_path / "t_seed1.csv")
    assert both.score.tolist() == pytest.approx([0.6, 0.6, 0.6])
    assert "mean of 2 training seeds" in both.score_note
    short = load_curve_table(tmp_path / "t.csv", tmp_path / "short_seed1.csv")
    assert short.score.tolist() == [0.5, 0.6, 0.7] and "lacks 1 of 3" in short.score_note


def test_a_table_without_test_accuracy_falls_back_to_validation_and_says_so() -> None:
    t = load_curve_table(E4)
    assert t.epochs == 4 and len(t.archs) == 30
    assert "no test_accuracy" in t.score_note
    assert len(t.rows("reference")) == 0


def test_paired_difference_matches_the_paired_t_test() -> None:
    rng = np.random.default_rng(1)
    b = rng.normal(0.8, 0.02, 40)
    a = b + rng.normal(0.01, 0.01, 40)
    d = paired_difference(a, b)
    p = stats.ttest_rel(a, b).pvalue
    assert d.n == 40 and d.mean == pytest.approx(float(np.mean(a - b)))
    assert d.excludes_zero == (p < 0.05)
    assert d.low < d.mean < d.high
    assert d.wins + d.losses == 40


def test_a_constant_difference_has_a_zero_width_interval_and_nan_pairs_drop() -> None:
    d = paired_difference([0.5, 0.6, math.nan], [0.4, 0.5, 0.3])
    assert d.n == 2 and d.mean == pytest.approx(0.1) and d.low == pytest.approx(d.high)


def test_the_minimum_detectable_difference_shrinks_with_root_n() -> None:
    small, large = min_detectable_difference(0.02, 25), min_detectable_difference(0.02, 100)
    assert large < small
    assert large == pytest.approx((stats.t.ppf(0.975, 99) + stats.t.ppf(0.8, 99)) * 0.02 / 10)
    assert mean_se([1.0, 3.0]).se == pytest.approx(1.0)


def test_a_spent_pool_ends_the_mapping_unless_reuse_is_asked_for(table: CurveTable) -> None:
    from nas_lib.bench.simulate import SimContext

    pool = np.array([3, 4])
    obj = TabularObjective(table, pool, budget=1e9)
    ctx = SimContext(table, pool, obj, PoolMapper(table.archs), np.random.default_rng(0), 0)
    assert ctx.map(parse_blocks(table.archs[3])) == 3
    obj.evaluate(3, 1)
    assert ctx.map(parse_blocks(table.archs[3])) == 4  # the nearest UNUSED row
    obj.evaluate(4, 1)
    with pytest.raises(BudgetExhausted):
        ctx.map(parse_blocks(table.archs[3]))
    assert ctx.map(parse_blocks(table.archs[3]), reuse=True) == 3


def test_compare_leaves_the_halving_methods_their_own_rungs_unless_told() -> None:
    import argparse
    import runpy

    compare = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"), run_name="compare")
    base = {"methods": "ehnas,random_sh,k_largest", "variant": [], "set": [], "rungs": "", "eta": None}
    chosen = compare["parse_methods"](argparse.Namespace(**base))
    assert chosen == {"ehnas": ("ehnas", {}), "random_sh": ("random_sh", {}), "k_largest": ("k_largest", {})}
    assert make_method("ehnas").config.eta == 2  # so a run without --eta measures the default recipe
    told = compare["parse_methods"](argparse.Namespace(**{**base, "rungs": "1,3,9", "eta": 3}))
    assert told["ehnas"] == ("ehnas", {"eta": 3, "budgets": (1, 3, 9)}) and told["k_largest"] == ("k_largest", {})


def test_compare_over_disjoint_blocks_of_rows_gives_an_interval_over_the_blocks(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "c.json"
    cmd = [sys.executable, "benchmarks/compare.py", "--table", str(TABLES / "hybrid_mnist14.csv"), "--blocks", "3", "--pool", "20"]
    cmd += ["--budgets", "0.25", "--seeds", "4", "--methods", "ehnas,random_sh,k_largest", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=TABLES.parents[1], timeout=300)
    assert done.returncode == 0, done.stderr
    entry = json.loads(out.read_text())["budgets"]["0.25"]
    assert len(entry["blocks"]) == 3 and "across 3 disjoint blocks" in done.stdout
    for label in ("random_sh", "k_largest"):
        blocks = [b[label]["vs_ehnas"]["mean"] for b in entry["blocks"]]
        across = entry["across_blocks"][label]["vs_ehnas"]
        assert across["blocks"] == blocks and across["mean"] == pytest.approx(np.mean(blocks))
        half = stats.t.ppf(0.975, 2) * np.std(blocks, ddof=1) / np.sqrt(3)
        assert across["ci95"] == pytest.approx([np.mean(blocks) - half, np.mean(blocks) + half])
    assert "ehnas" not in entry["across_blocks"] or "vs_ehnas" not in entry["across_blocks"]["ehnas"]
    bad = subprocess.run([*cmd[:4], "--blocks", "1000"], capture_output=True, text=True, cwd=TABLES.parents[1], timeout=120)
    assert bad.returncode == 2 and "--blocks must lie in" in bad.stderr
