"""Training rungs in the flow (flows/fidelity.py): a cache hit per rung, a resume in the middle of a
rung, the same scores on a real Dask LocalCluster, and a search whose fitness is the top rung."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from prefect import flow

from flows.fidelity import train_round
from flows.stages import Evaluation, evaluate
from nas_lib.evaluation import EvaluationStore
from nas_lib.fidelity.checkpoints import CheckpointStore
from nas_lib.fidelity.plan import FITNESS, FidelityPlan
from tasks.config import PipelineConfig, load_config
from tasks.fidelity import checkpoint_root
from tasks.run_folder import RunFolder
from tasks.spaces import base_space_dict, space_from_dict

pytestmark = pytest.mark.slow

TINY = [
    "run_name=r",
    "data.max_items=200",
    "space.min_depth=4",
    "space.max_depth=4",
    "training.batch_size=32",
    "training.max_batches_per_epoch=2",
    "evaluation.fidelity.kind=halving",
    "evaluation.fidelity.eta=2",
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as `nas_pipeline` sets (torch_threads) and Dask's workers run: a rung's
    score is bit-identical across runners only under the same thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def archs() -> list[str]:
    """Four depth-4 hybrids that train in a fraction of a second per epoch here (no 14-px windows)."""
    space = space_from_dict(base_space_dict(load_config(None, TINY).space))
    return [space.to_string(space.sample(np.random.default_rng(s), depth=4)) for s in (2, 3, 4, 5)]


def _run(root: Path, *extra: str) -> RunFolder:
    return RunFolder.create(load_config(None, [*TINY, f"runs_root={root}", *extra]))


def _by(rows: list[dict], proxy: str) -> dict[str, dict]:
    return {r["arch"]: r for r in rows if r["proxy"] == proxy}


def test_every_rung_is_a_cache_hit_the_second_time(harness, archs, tmp_path) -> None:
    first = evaluate(_run(tmp_path, "evaluation.fidelity.budgets=[1,2]", "evaluation.fidelity.schedule=short"), archs, "a")
    assert len(_by(first, "train@1")) == 4 and len(_by(first, "train@2")) == 2
    assert not any(r["cached"] for r in first if r["proxy"].startswith("train@"))
    stored = EvaluationStore(tmp_path / "evaluations.sqlite").count()
    again = evaluate(_run(tmp_path, "evaluation.fidelity.budgets=[1,2]", "evaluation.fidelity.schedule=short"), archs, "b")
    assert all(r["cached"] for r in again)
    assert [(r["arch"], r["proxy"], r["value"]) for r in again] == [(r["arch"], r["proxy"], r["value"]) for r in first]
    assert EvaluationStore(tmp_path / "evaluations.sqlite").count() == stored
    # A third rung on top (short schedule: each rung its own complete run, so rungs 1 and 2 keep their keys).
    longer = evaluate(_run(tmp_path, "evaluation.fidelity.budgets=[1,2,3]", "evaluation.fidelity.schedule=short"), archs, "c")
    assert all(r["cached"] for r in _by(longer, "train@1").values()) and all(r["cached"] for r in _by(longer, "train@2").values())
    (top,) = _by(longer, "train@3").values()
    assert not top["cached"]
    fitness = _by(longer, FITNESS)
    assert fitness[top["arch"]]["value"] == top["value"] and len(fitness) == 4
    assert EvaluationStore(tmp_path / "evaluations.sqlite").count() == stored + 1  # the rung at 3 (fitness rows are derived, not stored)


@flow
def _partial_rungs(run_dir: str, archs: list[str], promoted_done: str) -> None:
    """What a run killed in the middle of the rung at 2 epochs leaves: rung 1 stored for all, rung 2 for one."""
    ev = Evaluation.of(RunFolder(Path(run_dir)))
    plan = FidelityPlan(archs, ev.rungs.spec())
    train_round(ev, ev.rungs, plan.ask(), "partial-0")
    train_round(ev, ev.rungs, [(promoted_done, 2)], "partial-1")


@pytest.fixture(scope="module")
def reference(harness, archs, tmp_path_factory) -> list[dict]:
    """Rows of an uninterrupted halving over budgets 1 -> 2 (long schedule) on the thread runner."""
    return evaluate(_run(tmp_path_factory.mktemp("straight"), "evaluation.fidelity.budgets=[1,2]"), archs, "ref")


def test_a_run_killed_in_the_middle_of_a_rung_resumes_exactly(reference, archs, tmp_path) -> None:
    promoted = list(_by(reference, "train@2"))
    assert len(promoted) == 2
    run = _run(tmp_path / "killed", "evaluation.fidelity.budgets=[1,2]")
    _partial_rungs(str(run.root), archs, promoted[0])
    checkpoints = CheckpointStore(checkpoint_root(run.config().store_path()))
    assert checkpoints.count() == 4  # rung 1 of every architecture (the top rung keeps none)
    resumed = evaluate(run, archs, "resumed")
    top = _by(resumed, "train@2")
    assert top[promoted[0]]["cached"] and not top[promoted[1]]["cached"]
    assert all(r["cached"] for r in _by(resumed, "train@1").values())
    assert {a: r["value"] for a, r in top.items()} == {a: r["value"] for a, r in _by(reference, "train@2").items()}
    assert [r["value"] for r in resumed] == [r["value"] for r in reference]


def test_without_its_checkpoint_a_rung_trains_from_epoch_1_to_the_same_score(reference, archs, tmp_path) -> None:
    promoted = list(_by(reference, "train@2"))
    run = _run(tmp_path, "evaluation.fidelity.budgets=[1,2]")
    _partial_rungs(str(run.root), archs, promoted[0])
    shutil.rmtree(checkpoint_root(run.config().store_path()))
    again = evaluate(run, archs, "no-checkpoints")
    assert {a: r["value"] for a, r in _by(again, "train@2").items()} == {a: r["value"] for a, r in _by(reference, "train@2").items()}


def test_dask_local_cluster_gives_the_thread_scores(reference, archs, tmp_path) -> None:
    run = _run(tmp_path, "evaluation.fidelity.budgets=[1,2]", "execution.runner=dask", "execution.workers=1")
    on_dask = evaluate(run, archs, "dask")
    assert not any(r["cached"] for r in on_dask if r["proxy"].startswith("train@"))
    key = [(r["arch"], r["proxy"], r["value"], r["state"]) for r in reference]
    assert [(r["arch"], r["proxy"], r["value"], r["state"]) for r in on_dask] == key
    assert CheckpointStore(checkpoint_root(run.config().store_path())).count() == 4  # bytes from the worker, stored by the flow


def test_search_fitness_is_the_top_rung(harness, tmp_path) -> None:
    from flows.pipeline import nas_pipeline
    from nas_lib.artifacts import read_table

    cfg = load_config(
        None,
        [
            *TINY,
            f"runs_root={tmp_path}",
            "evaluation.fidelity.budgets=[1,2]",
            "population.size=4",
            "pruning.layers=[]",
            "search.generations=1",
            "search.per_generation=2",
            "training.top_k=1",
            "training.epochs=1",
            "registry.enabled=false",
        ],
    )
    assert isinstance(cfg, PipelineConfig)
    out = nas_pipeline(cfg)
    run = RunFolder(Path(out["run_dir"]))
    search = read_table(run.step_file("07_search"))
    evaluations = read_table(run.step_file("06_evaluations"))
    assert set(search["fitness_proxy"]) == {FITNESS}
    assert set(evaluations["proxy"]) >= {*cfg.evaluation.proxies, "train@1", "train@2", FITNESS}
    top = evaluations[evaluations["proxy"] == FITNESS].set_index("arch_id")["value"]
    population = search[search["generation"] == 0].set_index("arch_id")["fitness"]
    assert population.to_dict() == top.to_dict()
    assert len(search[search["generation"] == 1]) == 2


def test_the_predictor_ranks_what_stopped_below_the_top_rung(harness, tmp_path) -> None:
    from flows.pipeline import nas_pipeline
    from nas_lib.artifacts import read_table

    extra = ["population.size=8", "pruning.layers=[]", "search.generations=1", "search.per_generation=2", "training.top_k=1"]
    cfg = load_config(
        None,
        [*TINY, f"runs_root={tmp_path}", "evaluation.fidelity.budgets=[1,2]", "evaluation.predictor.enabled=true", "evaluation.predictor.min_rows=3",
         *extra, "training.epochs=1", "registry.enabled=false"],
    )  # fmt: skip
    run = RunFolder(Path(nas_pipeline(cfg)["run_dir"]))
    search = read_table(run.step_file("07_search")).set_index("arch_id")
    evaluations = read_table(run.step_file("06_evaluations"))
    top = evaluations[evaluations["proxy"] == "train@2"].set_index("arch_id")["value"]
    population = search[search["generation"] == 0]
    assert len(top) == 4  # eta 2: half of the 8 reach the top rung
    trained = population.loc[top.index]
    assert set(trained["fitness_proxy"]) == {FITNESS} and trained["fitness"].to_dict() == top.to_dict()
    predicted = population.drop(top.index)
    assert set(predicted["fitness_proxy"]) == {"predicted"} and np.isfinite(predicted["fitness"]).all()
    # the predictor's estimate, not the epoch-1 accuracy it stopped at
    low = evaluations[evaluations["proxy"] == "train@1"].set_index("arch_id")["value"]
    assert (predicted["fitness"] != low.loc[predicted.index]).all()


def test_prefilter_keeps_the_best_by_the_first_proxy_and_never_a_failure() -> None:
    from flows.fidelity import prefilter

    def row(arch: str, value: float | None) -> dict:
        state = "ok" if value is not None else "failed"
        return {"arch_id": f"id-{arch}", "arch": arch, "proxy": "params", "proxy_version": "1", "data_fingerprint": "fp", "seed": 0,
                "value": value, "state": state, "error": None, "seconds": 0.0, "device": "cpu", "cached": False}  # fmt: skip

    rows = [row("a", 3.0), row("b", None), row("c", 5.0), row("d", 1.0)]
    assert prefilter(rows, ["a", "b", "c", "d"], "params", 2) == ["c", "a"]
    assert prefilter(rows, ["a", "b", "c", "d", "a"], "params", None) == ["a", "b", "c", "d"]
    assert prefilter(rows, ["a", "b", "c", "d"], "params", 3) == ["c", "a", "d"]
