"""prefect-ray's `RayTaskRunner` with the pipeline's submission context (see flows/runners.py).

Importing this module needs the ``[ray]`` extra; `flows.runners.task_runner` imports it only
when ``execution.runner`` is ``ray``.
"""

from __future__ import annotations

import atexit
from typing import Any

import ray
from prefect_ray import RayTaskRunner

from flows.runners import submission
from tasks.config import ExecutionConfig


class EhnasRayTaskRunner(RayTaskRunner):
    """Joins the Ray cluster at ``address``, or starts a local Ray (``ray.init``)."""

    def __init__(self, address: str | None = None, init_kwargs: dict[str, Any] | None = None, gpus_per_task: float = 1.0) -> None:
        super().__init__(address=address, init_kwargs=init_kwargs)
        self.gpus_per_task = gpus_per_task

    @classmethod
    def for_config(cls, execution: ExecutionConfig, workers: int) -> EhnasRayTaskRunner:
        """The runner for the config's ``execution`` section (`workers` CPUs for a local Ray)."""
        if execution.address:
            return cls(address=execution.address, gpus_per_task=execution.gpus_per_task)
        local_ray(workers)
        return cls(gpus_per_task=execution.gpus_per_task)

    def duplicate(self) -> EhnasRayTaskRunner:
        """A fresh, unstarted runner with the same settings (Prefect starts duplicates)."""
        return type(self)(address=self.address, init_kwargs=self.init_kwargs, gpus_per_task=self.gpus_per_task)

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other) and getattr(other, "gpus_per_task", None) == self.gpus_per_task

    __hash__ = RayTaskRunner.__hash__

    def submit(self, task: Any, parameters: dict[str, Any], wait_for: Any = None, dependencies: Any = None) -> Any:
        """Submits under the worker API settings and the task's GPU resources."""
        with submission("ray", parameters, self.gpus_per_task, declared_gpus):
            return super().submit(task, parameters, wait_for=wait_for, dependencies=dependencies)


def declared_gpus() -> float:
    """The GPUs of the Ray cluster's nodes."""
    return float(ray.cluster_resources().get("GPU", 0))


def local_ray(workers: int) -> None:
    """Starts a local Ray with `workers` CPUs unless one runs in this process already.

    Kept until the process exits: a runner finds it initialised and leaves it running, so the
    pipeline's three sub-flows share one start-up instead of paying it each time.
    """
    if not ray.is_initialized():
        # No dashboard: a separate server process the pipeline never uses.
        ray.init(num_cpus=workers, include_dashboard=False, namespace="prefect")
        atexit.register(ray.shutdown)
