"""Task runners of the pipeline's sub-flows: Prefect's thread pool, a Dask cluster or Ray.

`task_runner(execution, devices)` turns the config's ``execution`` section into a Prefect task
runner. The Dask and Ray runners are prefect-dask's `DaskTaskRunner` and prefect-ray's
`RayTaskRunner` with two additions made where a task is submitted (so flows submit tasks the
same way on every runner):

* **Prefect API on the workers.** A task run on a worker reports its states and logs to the
  API found in the settings that travel with it. `ehnas run` without ``PREFECT_API_URL`` uses
  a temporary server that this process started, and the settings then name no URL at all: a
  worker would start a server of its own. The submitted settings name the temporary server's
  URL instead (it listens on 127.0.0.1, so such workers must run on this machine; a cluster on
  other machines needs a lasting server, see docs/distributed.md).
* **GPU resources.** A task whose ``device`` argument is a CUDA device asks for
  ``execution.gpus_per_task`` of the Dask worker resource ``GPU`` (workers started with
  ``--resources GPU=1``) or of Ray's ``num_gpus``: the cluster, not the flow, then decides
  which GPU worker runs it, and no two batches share a GPU. It asks only when the cluster
  declares GPUs (a request no worker can meet would wait forever); the worker that runs the
  task resolves its device and threads itself (`tasks.context.on_worker`).

Workers need the project importable (``pip install -e .[dask]`` / ``.[ray]`` in their
environment): tasks travel by reference to their module.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from nas_lib.extras import missing_extra
from tasks.config import ExecutionConfig


class RunnerUnavailable(ValueError):
    """The configured runner's optional dependencies are not installed."""


def check_runner(execution: ExecutionConfig) -> None:
    """Raises `RunnerUnavailable` (naming the extra to install) when the runner cannot start."""
    if execution.runner == "thread":
        return
    if problem := missing_extra(execution.runner, f"execution.runner={execution.runner}"):
        raise RunnerUnavailable(problem)


def task_runner(execution: ExecutionConfig, devices: list[str]) -> TaskRunner:
    """The Prefect task runner for `execution`.

    Args:
        execution: the config's ``execution`` section.
        devices: the devices batches spread over (``plan_devices``); a local cluster gets one
            worker per device unless ``execution.workers`` says otherwise.

    Raises:
        RunnerUnavailable: the runner's extra is not installed.
    """
    check_runner(execution)
    workers = execution.workers or len(devices)
    if execution.runner == "dask":
        from flows.runners_dask import EhnasDaskTaskRunner

        return EhnasDaskTaskRunner.for_config(execution, workers)
    if execution.runner == "ray":
        from flows.runners_ray import EhnasRayTaskRunner

        return EhnasRayTaskRunner.for_config(execution, workers)
    return ThreadPoolTaskRunner(max_workers=workers)


@contextlib.contextmanager
def worker_api() -> Iterator[str]:
    """Within the block, the settings name the Prefect API this process talks to.

    Yields:
        The API URL the submitted settings carry.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        get_current_settings,
        temporary_settings,
    )

    url = get_current_settings().api.url
    if url:
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the process-wide temporary server (a singleton)
    server.start()  # a no-op when it already runs, which it does inside a flow run
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield server.api_url


def is_gpu_device(device: Any) -> bool:
    """True for ``cuda`` and ``cuda:N``."""
    return isinstance(device, str) and device.startswith("cuda")


@contextlib.contextmanager
def gpu_resources(runner: str, device: Any, gpus: float) -> Iterator[dict[str, float]]:
    """Asks the cluster for `gpus` GPUs for the tasks submitted in the block when `device` is a
    CUDA device (Dask: worker resource ``GPU``; Ray: ``num_gpus``); otherwise asks nothing.

    Yields:
        The resources asked for ({} when none).
    """
    if not is_gpu_device(device) or gpus <= 0 or runner not in ("dask", "ray"):
        yield {}
        return
    if runner == "dask":
        import dask

        with dask.annotate(resources={"GPU": gpus}):
            yield {"GPU": gpus}
        return
    from prefect_ray.context import remote_options

    with remote_options(num_gpus=gpus):
        yield {"num_gpus": gpus}


_log = logging.getLogger(__name__)


def gpus_to_ask(device: Any, gpus: float, declared: Callable[[], float]) -> float:
    """The GPUs a task on `device` asks the cluster for: `gpus` for a CUDA device when the
    cluster declares GPUs (``declared()``, asked only then), else 0 with a warning: a request
    that no worker can meet would wait forever."""
    if not is_gpu_device(device) or gpus <= 0:
        return 0.0
    if declared() > 0:
        return gpus
    _warn_no_gpus(device)
    return 0.0


@functools.cache
def _warn_no_gpus(device: str) -> None:
    """Said once per device and process, not once per task."""
    _log.warning(
        "device %s: no worker of the cluster declares a GPU, so tasks ask for none and run on any worker, which resolves %s itself "
        "(declare GPUs with `dask worker --resources GPU=1`, or give Ray nodes GPUs)",
        device,
        device,
    )


@contextlib.contextmanager
def submission(runner: str, parameters: dict[str, Any], gpus: float, declared: Callable[[], float]) -> Iterator[None]:
    """What every task submitted to a cluster runs under: the API URL and its GPU resources
    (`gpus_to_ask`; ``declared`` counts the cluster's GPUs)."""
    device = parameters.get("device")
    with worker_api(), gpu_resources(runner, device, gpus_to_ask(device, gpus, declared)):
        yield


def release(future: Any) -> None:
    """Tells a cluster the flow is done with a future's result (its rows are stored).

    Dask keeps every key a client still references and recomputes it when the worker holding it
    dies, so a batch already stored would be scored again after a worker loss; releasing the
    key once its rows are stored prevents that. Thread and Ray futures need nothing.
    """
    wrapped = getattr(future, "_wrapped_future", None)
    if wrapped is not None and hasattr(wrapped, "release"):
        wrapped.release()
