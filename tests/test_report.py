"""Run summary and plots from a run folder's Parquet files (synthetic folder, no flow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ehnas.cli import app
from nas_lib.artifacts import write_table
from nas_lib.evaluation import EVALUATION_SCHEMA
from nas_lib.pruning import PRUNING_SCHEMA
from nas_lib.report import (
    PARETO_SCHEMA,
    finalist_front_rows,
    pareto_front,
    pareto_path,
    search_front_rows,
    search_progress,
    summary_markdown,
    write_plots,
)
from nas_lib.steps import Step
from tasks.registry import REGISTRY_SCHEMA
from tasks.search import SEARCH_SCHEMA
from tasks.training import TRAINING_SCHEMA


def make_run(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({}))
    search = [
        {
            "generation": g,
            "arch_id": f"a{g}{i}",
            "arch": "x",
            "fitness": float(g * 10 + i),
            "fitness_proxy": "nwot",
            "params": 100.0,
            "state": "ok",
            "seconds": 0.1,
            "best_so_far": 0.0,
        }
        for g in range(3)
        for i in range(3)
    ]
    search.append({**search[0], "arch_id": "bad", "fitness": math.nan, "state": "failed"})
    write_table(run / f"{Step.SEARCH}.parquet", search, SEARCH_SCHEMA)
    evals = [
        {
            "arch_id": f"a0{i}",
            "arch": "x",
            "proxy": "nwot",
            "proxy_version": "1",
            "data_fingerprint": "f",
            "seed": 0,
            "value": 1.0,
            "state": "ok",
            "error": None,
            "seconds": 0.1,
            "device": "cpu",
            "cached": i == 0,
        }
        for i in range(3)
    ]
    write_table(run / f"{Step.EVALUATIONS}.parquet", evals, EVALUATION_SCHEMA)
    training = [
        {
            "arch_id": f"t{i}",
            "arch": "x",
            "rank": i + 1,
            "fitness": 1.0,
            "params": p,
            "flops": 1,
            "val_accuracy": acc,
            "val_loss": 1.0,
            "macro_f1": acc,
            "epochs_run": 1,
            "seconds": 1.0,
            "state": "ok",
            "device": "cpu",
        }
        for i, (p, acc) in enumerate([(100, 0.5), (200, 0.7), (300, 0.6), (50, 0.4)])
    ]
    write_table(run / f"{Step.TRAINING}.parquet", training, TRAINING_SCHEMA)
    write_table(
        run / f"{Step.REGISTRY}.parquet",
        [
            {
                "arch_id": "t1",
                "arch": "x",
                "val_accuracy": 0.7,
                "params": 200,
                "model_name": "ehnas-digits",
                "version": "1",
                "alias": "champion",
                "model_uri": "models:/ehnas-digits@champion",
                "tracking_uri": "sqlite:///m.db",
                "state": "ok",
            }
        ],
        REGISTRY_SCHEMA,
    )
    return run


def test_search_progress_ignores_failures_and_accumulates(tmp_path):
    g = search_progress(make_run(tmp_path))
    assert g["best"].tolist() == [2.0, 12.0, 22.0] and g["n"].tolist() == [3, 3, 3]
    assert g["best_so_far"].is_monotonic_increasing


def test_pareto_front_drops_dominated_points():
    pts = pd.DataFrame({"params": [100, 200, 300, 50], "val_accuracy": [0.5, 0.7, 0.6, 0.4]})
    assert pareto_front(pts)["params"].tolist() == [50, 100, 200]


def test_summary_and_plots(tmp_path):
    run = make_run(tmp_path)
    text = summary_markdown(run)
    assert "ehnas-digits" in text and "champion" in text and "| 2 | 22 |" in text and "1 reused" in text
    files = write_plots(run)
    assert {f.name for f in files} == {"search_progress.png", "pareto.png"} and all(f.stat().st_size > 1000 for f in files)


def test_space_section_says_what_the_guard_undid(tmp_path):
    run = make_run(tmp_path)
    base = {
        "layer": "macro",
        "space": "hybrid",
        "provider": "offline",
        "log10_size_before": 10.1,
        "log10_size_after": 10.1,
        "top1pct_retention": 1.0,
        "proposed_top1pct_retention": 0.0,
        "guard_relaxed": True,
    }
    write_table(run / f"{Step.MACRO}.parquet", [{**base, "guard_steps": json.dumps(["restore vit in stage:early"])}], PRUNING_SCHEMA)
    write_table(
        run / f"{Step.HYPERPARAMETERS}.parquet", [{**base, "layer": "hyperparameters", "guard_steps": "[]", "guard_relaxed": False}], PRUNING_SCHEMA
    )
    text = summary_markdown(run)
    assert "| macro | offline | 10.1 | 10.1 | 1 | proposed cut kept 0 of the top 1%; guard: restore vit in stage:early |" in text
    assert "| hyperparameters | offline | 10.1 | 10.1 | 1 |  |" in text
    kept = {"keep": {"stage:early": ["cnn", "vit"]}, "rationale": "why", "min_depth": None, "forbidden_sequences": [["vit", "mamba"]]}
    cut = {**base, "log10_size_after": 9.9, "decision_json": json.dumps(kept), "guard_steps": json.dumps(["restore mamba in stage:mid"])}
    write_table(run / f"{Step.MACRO}.parquet", [cut], PRUNING_SCHEMA)
    assert (
        '| macro | offline | 10.1 | 9.9 | 1 | kept cut: stage:early keeps cnn, vit; forbidden_sequences [["vit", "mamba"]]; '
        "proposed cut kept 0 of the top 1%; guard: restore mamba in stage:mid |"
    ) in summary_markdown(run)


def test_report_command(tmp_path):
    run = make_run(tmp_path)
    result = CliRunner().invoke(app, ["report", "r1", "--runs-root", str(run.parent), "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "Search progress" in result.output and (tmp_path / "p" / "pareto.png").exists()
    bad = CliRunner().invoke(app, ["report", "nope", "--runs-root", str(tmp_path)])
    assert bad.exit_code != 0


def test_pareto_fronts_are_read_from_their_parquet_into_the_summary_and_plots(tmp_path):
    run = make_run(tmp_path)
    finalists = finalist_front_rows(pd.read_parquet(run / f"{Step.TRAINING}.parquet"))
    assert [(r["arch_id"], r["cost"], r["score"]) for r in finalists] == [("t3", 50.0, 0.4), ("t0", 100.0, 0.5), ("t1", 200.0, 0.7)]
    write_table(pareto_path(run, Step.TRAINING), finalists, PARETO_SCHEMA)
    front = [{"arch": "x", "arch_id": "a22", "fitness": 22.0, "cost": 100.0, "cost_name": "params"}]
    write_table(pareto_path(run, Step.SEARCH), search_front_rows(front, "nwot"), PARETO_SCHEMA)
    text = summary_markdown(run)
    assert "## Search Pareto front (NSGA-II): nwot up, params down" in text and "| 22 | 100 | a22 | x |" in text
    assert "## Finalists' Pareto front: val_accuracy up, params down" in text and "| 0.7 | 200 | t1 | x |" in text
    files = write_plots(run)
    assert {f.name for f in files} == {"search_progress.png", "pareto.png", "pareto_search.png"} and all(f.stat().st_size > 1000 for f in files)
    result = CliRunner().invoke(app, ["report", "r1", "--runs-root", str(run.parent)])
    assert result.exit_code == 0 and "Search Pareto front" in result.output and "pareto_search.png" in result.output


def test_nsga2_front_is_the_non_dominated_set_of_what_it_scored():
    from nas_lib.search import make_strategy
    from nas_lib.space import get_space

    space = get_space("nb201")
    nsga = make_strategy("nsga2", space, seed=0, population=4)
    specs = nsga.ask(12)
    nsga.tell(specs, [float(i % 5) for i in range(12)])
    front = nsga.front()
    points = {space.to_string(s): (float(i % 5), nsga.cost_of(s)) for i, s in enumerate(specs)}
    beaten = {a for a, (fa, ca) in points.items() for fb, cb in points.values() if fb >= fa and cb <= ca and (fb, cb) != (fa, ca)}
    assert sorted(r["arch"] for r in front) == sorted(set(points) - beaten)
    assert all(r["cost_name"] == "params" and r["arch_id"] == space.arch_id(space.from_string(r["arch"])) for r in front)
    assert make_strategy("rea", space, seed=0).front() == []  # single-objective strategies have none


@pytest.mark.slow
def test_a_pipeline_run_saves_both_fronts_and_shows_them(tmp_path, tiny_overrides):
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import nas_pipeline
    from tasks.config import load_config

    more = ["run_name=p1", f"runs_root={tmp_path}", "population.size=4", "search.strategy=nsga2", "search.generations=1"]
    more += ["search.per_generation=2", "training.top_k=3", "evaluation.proxies=[nwot, params]"]
    cfg = load_config(None, [*tiny_overrides, *more])
    with prefect_test_harness(server_startup_timeout=120):
        run = Path(nas_pipeline(cfg)["run_dir"])
        with get_client(sync_client=True) as client:
            keys = {a.key for a in client.read_artifacts(limit=200) if a.key}
    search, front = pd.read_parquet(run / f"{Step.SEARCH}.parquet"), pd.read_parquet(pareto_path(run, Step.SEARCH))
    assert set(front["arch_id"]) <= set(search["arch_id"]) and search.loc[search["fitness"].idxmax(), "arch_id"] in set(front["arch_id"])
    assert set(front["score_name"]) == {"nwot"} and set(front["cost_name"]) == {"params"}
    for a in front.itertuples():  # no point of the front beats another on both objectives
        assert not ((front["score"] >= a.score) & (front["cost"] <= a.cost) & ((front["score"] > a.score) | (front["cost"] < a.cost))).any()
    finalists = pd.read_parquet(pareto_path(run, Step.TRAINING))
    assert finalists.to_dict("records") == finalist_front_rows(pd.read_parquet(run / f"{Step.TRAINING}.parquet"))
    assert {"p1-07-search-pareto", "p1-08-training-pareto"} <= keys
    assert "Search Pareto front (NSGA-II)" in summary_markdown(run) and (run / "plots" / "pareto_search.png").exists()
