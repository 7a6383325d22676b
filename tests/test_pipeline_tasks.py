"""Task helpers without a flow: device planning, retry policy, run folder and ledger, step
enum, data reference, population, and the rule that tasks take values, not run folders."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import tasks
from nas_lib.population import PopulationConfig, generate_population
from nas_lib.space import HybridConstraints, HybridSpace, NB201Space
from nas_lib.steps import LAYER_STEPS, Step, parse_step
from tasks import context
from tasks.config import load_config
from tasks.data_ref import DataRef
from tasks.retry import is_transient
from tasks.run_folder import RunFolder


def test_devices_auto_spreads_over_every_gpu(monkeypatch):
    monkeypatch.setattr(context.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(context.torch.cuda, "device_count", lambda: 3)
    assert context.plan_devices("auto") == ["cuda:0", "cuda:1", "cuda:2"]
    assert context.plan_devices("cuda") == ["cuda:0"] and context.plan_devices("cuda:2") == ["cuda:2"]
    monkeypatch.setattr(context.torch.cuda, "is_available", lambda: False)
    assert context.plan_devices("auto") == ["cpu"]


def test_on_a_cluster_at_an_address_the_workers_resolve_the_device(monkeypatch):
    from tasks.config import ExecutionConfig

    monkeypatch.setattr(context.torch.cuda, "is_available", lambda: False)
    remote = ExecutionConfig(runner="dask", address="tcp://127.0.0.1:8786")
    assert context.plan_devices("cuda", remote) == ["cuda"] and context.plan_devices("auto", remote) == ["auto"]
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        context.plan_devices("gpu", remote)
    with pytest.raises(ValueError, match="CUDA is not available"):  # a local cluster runs on this machine
        context.plan_devices("cuda", ExecutionConfig(runner="dask"))
    assert context.on_worker("auto", 2) == ("cpu", 2) and context.torch.get_num_threads() == 2
    assert context.on_worker("cpu", None) == ("cpu", 2), "outside a cluster worker, None keeps torch's threads"
    context.torch.set_num_threads(1)


def test_a_device_this_machine_lacks_stops_the_run_before_any_step(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from ehnas.cli import app

    monkeypatch.setattr(context.torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        context.plan_devices("cuda:1")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        context.plan_devices("gpu")
    result = CliRunner().invoke(app, ["run", "--set", "device=cuda", "--set", f"runs_root={tmp_path}"])
    assert result.exit_code == 2 and "CUDA is not available" in result.output
    assert not any(tmp_path.iterdir()), "nothing was started or written"


@pytest.mark.parametrize(
    "err, retry",
    [
        (OSError("disk hiccup"), True),
        (ConnectionError("reset"), True),
        (TimeoutError(), True),
        (RuntimeError("CUDA out of memory"), False),
        (ValueError("qkv_dim 250 is not divisible by num_heads 4"), False),
        (RuntimeError("injected fault"), False),
        (None, False),
    ],
)
def test_only_transient_faults_are_retried(err, retry):
    assert is_transient(err) is retry


def test_ledger_reuses_only_steps_of_the_same_config(tmp_path):
    cfg = load_config(None, [f"runs_root={tmp_path}", "run_name=r"])
    run = RunFolder.create(cfg)
    run.step_file(Step.POPULATION).write_bytes(b"x")
    run.mark(Step.POPULATION, 1.0)
    assert run.done(Step.POPULATION) and not run.done(Step.EVALUATIONS)
    assert run.forget("04_connections")[:2] == [Step.CONNECTIONS, Step.POPULATION]
    assert not run.done(Step.POPULATION)
    run.mark(Step.POPULATION, 1.0)
    RunFolder.create(load_config(None, [f"runs_root={tmp_path}", "run_name=r", "seed=9"]))
    assert not run.done(Step.POPULATION)  # another config under the same name
    with pytest.raises(ValueError, match="steps: 01_knowledge"):
        run.step_file("10_nothing")


def test_forget_drops_the_search_state_and_saved_finalists_with_their_steps(tmp_path):
    run = RunFolder.create(load_config(None, [f"runs_root={tmp_path}", "run_name=r"]))
    run.save_search_state({"generation": 3})
    run.save_finalist({"arch_id": "a1", "rank": 1})
    run.forget(Step.TRAINING)
    assert run.search_state() == {"generation": 3} and run.finalist_row("a1") is None
    run.forget(Step.SEARCH)
    assert run.search_state() is None
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        RunFolder.open(tmp_path / "nothing")


def test_steps_are_one_enum_with_the_pruning_layers_derived_from_the_layer_list():
    from nas_lib.pruning.run import LAYERS

    assert [s.value for s in Step] == [
        "01_knowledge",
        "02_macro",
        "03_hyperparameters",
        "04_connections",
        "05_population",
        "06_evaluations",
        "07_search",
        "08_training",
        "09_registry",
    ]
    assert list(LAYER_STEPS) == list(LAYERS) and all(LAYER_STEPS[layer].value.endswith(layer) for layer in LAYERS)
    assert parse_step("07_search") is Step.SEARCH and f"{Step.SEARCH}.parquet" == "07_search.parquet"
    with pytest.raises(ValueError, match="unknown step '7_search'"):
        parse_step("7_search")


def _prefect_tasks() -> list:
    from prefect import Task

    found = []
    for info in pkgutil.iter_modules(tasks.__path__):
        if info.name == "serving_model":  # MLflow's model code: importing it registers a model
            continue
        module = importlib.import_module(f"tasks.{info.name}")
        found += [obj for obj in vars(module).values() if isinstance(obj, Task) and obj.fn.__module__ == module.__name__]
    return found


def test_every_task_takes_values_not_a_run_folder():
    # a task that re-reads the run folder can only run on the machine that holds it; the
    # registry task logs the run folder's files and is the one exception
    found = _prefect_tasks()
    assert {t.name for t in found} >= {"knowledge", "prune-layer", "population", "score-batch", "search-ask", "search-tell", "train-finalist"}
    for t in found:
        params = set(inspect.signature(t.fn).parameters)
        assert "run_dir" not in params or t.name == "register-winner", t.name
        assert "load_config" not in inspect.getsource(inspect.getmodule(t.fn)), t.name


def test_data_ref_loads_once_per_process_and_resolves_an_fsspec_url(tmp_path, monkeypatch):
    import fsspec

    ref = DataRef(kind="digits", seed=3, max_items=60)
    assert ref.load() is ref.load() and DataRef(kind="digits", seed=3, max_items=60).load() is ref.load()
    monkeypatch.setenv("EHNAS_DATA_CACHE", str(tmp_path / "cache"))
    x = np.arange(8 * 8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 8, 3)
    y = np.array([0, 1] * 4)
    with fsspec.open("memory://ehnas-test/tiny.npz", "wb") as f:
        np.savez(f, x=x, y=y)
    remote = DataRef(kind="cifar10_npz", path="memory://ehnas-test/tiny.npz", val_fraction=0.25)
    local = tmp_path / "tiny.npz"
    np.savez(local, x=x, y=y)
    assert remote.load().fingerprint == DataRef(kind="cifar10_npz", path=str(local), val_fraction=0.25).load().fingerprint
    assert any((tmp_path / "cache").rglob("tiny.npz"))
    with pytest.raises(FileNotFoundError, match="memory://ehnas-test/none.npz"):
        DataRef(kind="cifar10_npz", path="memory://ehnas-test/none.npz").load()


def test_data_ref_from_a_registered_models_data_options_is_the_runs_own():
    # what `tasks.mlflow_model.serving_info` stores in ehnas.json, read back by `registered_export_source`
    config = load_config(None, ["data.kind=cifar10_npz", "data.path=memory://x/d.npz", "data.max_corrupt_fraction=0.2", "seed=4"])
    stored = {**config.data.model_dump(mode="json"), "seed": config.seed}
    assert DataRef.from_options(stored) == DataRef.of(config)
    with pytest.raises(KeyError):
        DataRef.from_options({"path": "x"})


@pytest.mark.parametrize("space", [HybridSpace(HybridConstraints(min_depth=4, max_depth=8)), NB201Space()], ids=["hybrid", "nb201"])
def test_population_is_distinct_seeded_and_spread_over_depths(space):
    rows = generate_population(space, PopulationConfig(size=24), np.random.default_rng(0))
    assert len({r["arch_id"] for r in rows}) == 24
    assert rows == generate_population(space, PopulationConfig(size=24), np.random.default_rng(0))
    if isinstance(space, HybridSpace):
        assert len({r["depth"] for r in rows}) >= 4  # uniform sampling would give almost only depth 8


def test_heartbeats_are_off_only_for_a_temporary_server(monkeypatch):
    # every flow run ends by joining the heartbeat thread (1 s sleeps): pointless when the server
    # dies with the process, kept when an API URL (a lasting server) or the user's setting exists
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    from flows.pipeline import prefect_settings

    for name in ("PREFECT_API_URL", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        monkeypatch.delenv(name, raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None}), prefect_settings():
        assert get_current_settings().flows.heartbeat_frequency is None
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}), prefect_settings():
        assert get_current_settings().flows.heartbeat_frequency == 180
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")
    with temporary_settings(updates={PREFECT_API_URL: None}), prefect_settings():
        assert get_current_settings().flows.heartbeat_frequency == 60


def test_a_damaged_ledger_counts_every_step_unfinished(tmp_path):
    run = RunFolder.create(load_config(None, [f"runs_root={tmp_path}", "run_name=r"]))
    run.step_file(Step.POPULATION).write_bytes(b"x")
    run.mark(Step.POPULATION, 1.0)
    run.ledger_file.write_text('{"05_population": {"conf', encoding="utf-8")  # torn by a full disk
    assert "steps.json is damaged" in run.ledger_problem()
    assert not run.done(Step.POPULATION)


def test_a_step_file_replaced_after_it_was_recorded_is_not_done(tmp_path):
    run = RunFolder.create(load_config(None, [f"runs_root={tmp_path}", "run_name=r"]))
    run.step_file(Step.POPULATION).write_bytes(b"abc")
    run.mark(Step.POPULATION, 1.0)
    run.step_file(Step.POPULATION).write_bytes(b"abd")
    assert not run.done(Step.POPULATION) and "changed content" in run.damage(Step.POPULATION)
    run.step_file(Step.POPULATION).unlink()
    assert "is missing" in run.damage(Step.POPULATION)


def test_report_names_a_damaged_file_and_exits_non_zero(tmp_path):
    from typer.testing import CliRunner

    from ehnas.cli import app
    from tasks.population import POPULATION_SCHEMA

    run = RunFolder.create(load_config(None, [f"runs_root={tmp_path}", "run_name=r"]))
    run.write_step(Step.POPULATION, [], POPULATION_SCHEMA)
    run.mark(Step.POPULATION, 1.0)
    path = run.step_file(Step.POPULATION)
    path.write_bytes(path.read_bytes()[:20])
    result = CliRunner().invoke(app, ["report", "r", "--runs-root", str(tmp_path)])
    assert result.exit_code == 1
    assert "05_population.parquet changed size" in result.output


def test_a_full_disk_is_reported_with_the_path_and_leaves_no_file(tmp_path, monkeypatch):
    import errno
    import os

    from nas_lib.artifacts import DiskFullError, atomic_write_json

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match=r"disk full: could not write .*steps\.json"):
        atomic_write_json(tmp_path / "steps.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_library_loggers_reach_prefect_from_the_command_line():
    import subprocess
    import sys

    code = (
        "import ehnas.cli, logging, prefect.logging.configuration as c; c.ensure_logging_setup(); "
        "print(sorted(type(h).__name__ for h in logging.getLogger('nas_lib').handlers))"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "PREFECT_LOGGING_EXTRA_LOGGERS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    assert "APILogHandler" in out


def test_skipped_corrupt_images_are_recorded_and_reported(tmp_path):
    from PIL import Image

    from nas_lib.data.datasets import load_dataset
    from nas_lib.report import summary_markdown

    for label in ("a", "b"):
        (tmp_path / "img" / label).mkdir(parents=True)
        for i in range(60):
            Image.new("RGB", (8, 8), (i, 4 * i % 255, 0)).save(tmp_path / "img" / label / f"{i}.png")
    (tmp_path / "img" / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    data = load_dataset("image_folder", tmp_path / "img", image_size=8, max_corrupt_fraction=0.05)
    run = RunFolder.create(load_config(None, [f"runs_root={tmp_path}", "run_name=r"]))
    record = run.save_data_record(data)
    assert record["skipped_count"] == 1 and record["skipped"][0]["file"].endswith("broken.png")
    assert "1 corrupt image files skipped" in summary_markdown(run.root)


def test_a_score_crosses_the_task_seam_as_the_proxys_typed_result():
    from tasks.evaluation import Scoring, score_records
    from tasks.spaces import space_to_dict

    space = NB201Space()
    scoring = Scoring(data=DataRef(kind="digits", max_items=60), proxies=("params", "nwot"), proxy_batch=8, seed=0)
    work = [(space.to_string(space.sample(np.random.default_rng(0))), ["params", "nwot"])]
    ok = score_records(scoring, space_to_dict(space), work, "cpu")
    assert [(r.proxy, r.state, r.error) for r in ok] == [("params", "ok", None), ("nwot", "ok", None)] and all(r.value > 0 for r in ok)
    failed = score_records(scoring, space_to_dict(space), work, "cuda:64")  # no such device: the network cannot be placed
    assert [(r.proxy, r.state, r.value) for r in failed] == [("params", "failed", None), ("nwot", "failed", None)]
    assert failed[0].error and failed[0].error == failed[1].error  # one shared failure, described once, replayed to both


def test_the_run_says_when_its_config_narrowed_the_space_before_pruning():
    from tasks.config import PipelineConfig
    from tasks.spaces import narrowing_note

    note = narrowing_note(PipelineConfig().space)
    assert note is not None and note.startswith(
        "space: the default config narrowed the hybrid space from log10 size 53.18 (ehnas space describe) to "
    )
    assert "(depth 4-6; space.constraints: hyperparameters) before any pruning" in note
    assert narrowing_note(PipelineConfig(space={"name": "nb201"}).space) is None
    assert narrowing_note(PipelineConfig(space={"max_depth": 20, "constraints": {}}).space) is None
