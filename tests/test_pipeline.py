"""The whole pipeline flow under `prefect_test_harness`: crash during evaluation, resume, warm rerun.

One module-scoped scenario shares the slow parts (harness start, flow runs, MLflow) across the
assertions:

1. run A fails during the population's evaluation (`FaultAfter`, patched in from this test,
   raises once a number of evaluations ran, as a worker dying mid-run would);
2. run B (same config, same run name) resumes: only the missing evaluations run;
3. run C reruns a finished run: no step and no evaluation runs, no new model version;
4. run D redoes the training step alone;
5. the evaluations file is cut in half: the report names it, and run E redoes that step and the
   later ones from the stored scores.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from nas_lib import evaluation as ev
from nas_lib.steps import Step
from tasks.config import load_config
from tasks.run_folder import RunFolder

pytestmark = pytest.mark.slow

STEPS = [str(s) for s in Step]
FAULT_AFTER = 4  # two proxies, batches of two: the first batch is stored, the crash hits the second
OVERRIDES = [
    "run_name=t1",
    "space.min_depth=4",
    "space.max_depth=4",
    "population.size=5",
    "evaluation.batch_size=2",
    "evaluation.proxies=[nwot, params]",
    "data.proxy_batch=16",
    "pruning.layers=[]",
    "search.generations=1",
    "search.per_generation=2",
    "training.top_k=2",
    "training.epochs=1",
    "training.max_batches_per_epoch=2",
]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import nas_pipeline

    root = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, [*OVERRIDES, f"runs_root={root}"])
    out = {"cfg": cfg}
    counter = FaultAfter(FAULT_AFTER)
    with prefect_test_harness(server_startup_timeout=120), pytest.MonkeyPatch.context() as mp:
        mp.setattr(ev, "score_one", counter)
        with pytest.raises(Exception) as crash:
            nas_pipeline(cfg)
        out["crash"] = crash.value
        out["stored_after_crash"] = ev.EvaluationStore(cfg.store_path()).count()
        counter.limit = None
        before = counter.fresh
        out["b"] = nas_pipeline(cfg)
        out["fresh_b"] = counter.fresh - before
        out["stored_after_b"] = ev.EvaluationStore(cfg.store_path()).count()
        out["evals_b"] = RunFolder(out["b"]["run_dir"]).read_step(Step.EVALUATIONS)  # run E rewrites the file
        before = counter.fresh
        out["c"] = nas_pipeline(cfg)
        out["fresh_c"] = counter.fresh - before
        out["d"] = nas_pipeline(cfg, redo="08_training")
        out.update(_damage_evaluations(RunFolder(out["d"]["run_dir"])))
        before = counter.fresh
        out["e"] = nas_pipeline(cfg)
        out["fresh_e"] = counter.fresh - before
        out["artifacts"] = _artifact_keys()
    return out


class FaultAfter:
    """`nas_lib.evaluation.score_one` that raises once `limit` evaluations (one per proxy) ran in
    this process; counts them either way."""

    def __init__(self, limit: int | None) -> None:
        self.limit, self.fresh, self.lock, self.real = limit, 0, threading.Lock(), ev.score_one

    def __call__(self, space: Any, spec: Any, proxies: Any, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            if self.limit is not None and self.fresh + len(proxies) > self.limit:
                raise RuntimeError(f"injected fault after {self.fresh} evaluations")
            self.fresh += len(proxies)
        return self.real(space, spec, proxies, *args, **kwargs)


def _damage_evaluations(run: RunFolder) -> dict[str, Any]:
    from nas_lib.report import summary_markdown

    path = run.step_file(Step.EVALUATIONS)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return {"damage": run.damage(Step.EVALUATIONS), "report_damaged": summary_markdown(run.root)}


def _artifact_keys() -> set[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {a.key for a in client.read_artifacts(limit=200) if a.key}


def test_crash_is_the_injected_fault_and_keeps_finished_scores(scenario):
    assert "injected fault" in str(scenario["crash"])
    assert scenario["stored_after_crash"] == FAULT_AFTER


def test_resume_pays_only_the_missing_evaluations(scenario):
    assert scenario["fresh_b"] == scenario["stored_after_b"] - FAULT_AFTER
    assert scenario["b"]["ran"] == list(STEPS[5:])  # knowledge, pruning and population had finished before the crash
    evals = scenario["evals_b"]
    assert len(evals) == 5 * 2 and not evals.duplicated(["arch_id", "proxy"]).any()
    assert int(evals["cached"].sum()) == FAULT_AFTER


def test_every_step_wrote_its_parquet_without_duplicates(scenario):
    run = RunFolder(scenario["b"]["run_dir"])
    for step in Step:
        assert run.step_file(step).exists(), step
    search = run.read_step(Step.SEARCH)
    assert sorted(search["generation"].unique()) == [0, 1] and not search.duplicated(["generation", "arch_id"]).any()
    training = run.read_step(Step.TRAINING)
    assert len(training) == 2 and training["val_accuracy"].between(0, 1).all()
    registry = run.read_step(Step.REGISTRY).iloc[0]
    assert registry["state"] == "ok" and registry["model_name"] == "ehnas-digits"


def test_rerun_reuses_everything(scenario):
    assert scenario["c"]["ran"] == [] and scenario["fresh_c"] == 0


def test_redo_runs_only_the_named_step_and_later(scenario):
    assert scenario["d"]["ran"] == ["08_training", "09_registry"]


def test_a_damaged_step_file_is_named_and_redone(scenario):
    assert "06_evaluations.parquet changed size" in scenario["damage"]
    assert "**Damaged:**" in scenario["report_damaged"] and "06_evaluations.parquet" in scenario["report_damaged"]
    assert scenario["e"]["ran"] == STEPS[5:] and scenario["fresh_e"] == 0
    run = RunFolder(scenario["e"]["run_dir"])
    assert run.damage(Step.EVALUATIONS) is None and len(run.read_step(Step.EVALUATIONS)) == 5 * 2


def test_one_registered_version_after_all_reruns(scenario):
    from mlflow import MlflowClient

    cfg = scenario["cfg"]
    uri = cfg.tracking_uri()  # the registry URI must be given too: MLflow keeps a global one
    versions = MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions(f"name='{cfg.model_name()}'")
    assert len(versions) == 1


def test_ui_artifacts(scenario):
    keys = scenario["artifacts"]
    assert {"t1-summary", "t1-top-k", "t1-population-progress", "t1-search-progress"} <= keys
    assert any(k.startswith("train-") for k in keys)  # each finalist's per-epoch progress


def test_mlflow_gets_history_per_class_scores_confusion_matrix_and_dataset(scenario):
    from mlflow import MlflowClient

    from tasks.mlflow_registry import EXPERIMENT

    uri = scenario["cfg"].tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    finalists = client.search_runs([experiment], "tags.`ehnas.kind` = 'finalist'")
    assert len(finalists) == 2
    for run in finalists:
        history = client.get_metric_history(run.info.run_id, "epoch_val_accuracy")
        assert {m.step for m in history} == {1}  # training.epochs=1 (each registration of the run logs it again)
        assert any(k.startswith("val_f1_") for k in run.data.metrics)
        assert {"confusion_matrix.png", "metrics.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    parent = client.search_runs([experiment], "attributes.run_name = 't1'")[0]
    assert [d.dataset.name for d in parent.inputs.dataset_inputs] == ["digits"]
    training = RunFolder(scenario["e"]["run_dir"]).read_step(Step.TRAINING)
    assert training["history"].notna().all() and training["class_scores"].notna().all()
