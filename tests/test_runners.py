"""`flows.runners`: the config's execution section becomes the right Prefect task runner, a
missing extra is a clear error, and GPU resources are asked for only for CUDA devices.

The clusters themselves (Dask scheduler and workers, a local Ray) are exercised by
tests/test_runners_cluster.py.
"""

from __future__ import annotations

import pytest
from prefect.task_runners import ThreadPoolTaskRunner

from flows.runners import RunnerUnavailable, check_runner, gpu_resources, task_runner
from nas_lib.extras import EXTRA_MODULES
from tasks.config import ExecutionConfig, PipelineConfig, load_config


def test_thread_is_the_default_with_one_worker_per_device():
    execution = PipelineConfig().execution
    assert execution.runner == "thread" and execution.address == ""
    runner = task_runner(execution, ["cuda:0", "cuda:1"])
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 2
    assert task_runner(ExecutionConfig(workers=3), ["cpu"])._max_workers == 3


def test_execution_is_not_part_of_the_fingerprint():
    """A run started on threads resumes on a cluster (same folder, every finished step kept)."""
    assert load_config(None, ["execution.runner=dask", "execution.address=tcp://10.0.0.1:8786"]).fingerprint() == PipelineConfig().fingerprint()


def test_bad_runner_is_a_validation_error_naming_the_choices():
    with pytest.raises(ValueError, match="thread"):
        load_config(None, ["execution.runner=spark"])


def test_dask_runner_joins_the_given_address():
    from flows.runners_dask import EhnasDaskTaskRunner

    runner = task_runner(ExecutionConfig(runner="dask", address="tcp://127.0.0.1:8786", gpus_per_task=0.5), ["cpu"])
    assert isinstance(runner, EhnasDaskTaskRunner) and runner.address == "tcp://127.0.0.1:8786"
    twin = runner.duplicate()
    assert twin == runner and twin.gpus_per_task == 0.5 and twin is not runner


def test_ray_runner_joins_the_given_address():
    from flows.runners_ray import EhnasRayTaskRunner

    runner = task_runner(ExecutionConfig(runner="ray", address="127.0.0.1:6379"), ["cpu"])
    assert isinstance(runner, EhnasRayTaskRunner) and runner.address == "127.0.0.1:6379"
    assert runner.duplicate() == runner


def test_missing_extra_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(EXTRA_MODULES, "dask", ("distributed", "ehnas_no_such_module"))
    with pytest.raises(RunnerUnavailable, match=r"\[dask\] extra .*ehnas_no_such_module.*pip install -e '\.\[dask\]'"):
        check_runner(ExecutionConfig(runner="dask"))
    with pytest.raises(RunnerUnavailable):
        task_runner(ExecutionConfig(runner="dask", address="tcp://127.0.0.1:1"), ["cpu"])
    check_runner(ExecutionConfig())  # the thread runner needs nothing


def test_gpus_are_asked_only_of_a_cluster_that_declares_them(caplog):
    from flows.runners import _warn_no_gpus, gpus_to_ask

    _warn_no_gpus.cache_clear()  # said once per process: clear what an earlier test said

    def never() -> float:
        raise AssertionError("the cluster is asked only for CUDA tasks")

    assert gpus_to_ask("cpu", 1.0, never) == 0.0 and gpus_to_ask("auto", 1.0, never) == 0.0 and gpus_to_ask("cuda", 0.0, never) == 0.0
    assert gpus_to_ask("cuda:0", 0.5, lambda: 2.0) == 0.5
    assert gpus_to_ask("cuda", 1.0, lambda: 0.0) == 0.0  # no worker could meet it: the task would wait forever
    assert "no worker of the cluster declares a GPU" in caplog.text


@pytest.mark.parametrize("device", ["cpu", "mps", None])
def test_no_gpu_resources_off_cuda(device):
    import dask

    with gpu_resources("dask", device, 1.0) as asked:
        assert asked == {} and "resources" not in dask.get_annotations()


def test_dask_gpu_resources_annotate_submissions():
    import dask

    with gpu_resources("dask", "cuda:1", 0.5) as asked:
        assert asked == {"GPU": 0.5} and dask.get_annotations()["resources"] == {"GPU": 0.5}
    assert "resources" not in dask.get_annotations()
    with gpu_resources("dask", "cuda", 0.0) as asked:  # gpus_per_task 0: no resource asked
        assert asked == {}


def test_ray_gpu_resources_set_remote_options():
    from prefect_ray.context import RemoteOptionsContext

    with gpu_resources("ray", "cuda", 1.0) as asked:
        assert asked == {"num_gpus": 1.0} and RemoteOptionsContext.get().current_remote_options == {"num_gpus": 1.0}
    assert RemoteOptionsContext.get().current_remote_options == {}
    with gpu_resources("thread", "cuda", 1.0) as asked:
        assert asked == {}
