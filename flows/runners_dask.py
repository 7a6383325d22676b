"""prefect-dask's `DaskTaskRunner` with the pipeline's submission context (see flows/runners.py).

Importing this module needs the ``[dask]`` extra; `flows.runners.task_runner` imports it only
when ``execution.runner`` is ``dask``.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from prefect_dask import DaskTaskRunner

from flows.runners import submission
from tasks.config import ExecutionConfig


class EhnasDaskTaskRunner(DaskTaskRunner):
    """Joins the scheduler at ``address``, or starts a local cluster of worker processes."""

    def __init__(self, *args: Any, gpus_per_task: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gpus_per_task = gpus_per_task

    @classmethod
    def for_config(cls, execution: ExecutionConfig, workers: int) -> EhnasDaskTaskRunner:
        """The runner for the config's ``execution`` section (`workers` sizes a local cluster)."""
        address = execution.address or local_cluster(workers)
        return cls(address=address, gpus_per_task=execution.gpus_per_task)

    def duplicate(self) -> EhnasDaskTaskRunner:
        """A fresh, unstarted runner with the same settings (Prefect starts duplicates)."""
        return type(self)(
            address=self.address,
            cluster_class=self.cluster_class,
            cluster_kwargs=self.cluster_kwargs,
            adapt_kwargs=self.adapt_kwargs,
            client_kwargs=self.client_kwargs,
            performance_report_path=self.performance_report_path,
            gpus_per_task=self.gpus_per_task,
        )

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other) and getattr(other, "gpus_per_task", None) == self.gpus_per_task

    __hash__ = DaskTaskRunner.__hash__

    def submit(self, task: Any, parameters: dict[str, Any], wait_for: Any = None, dependencies: Any = None) -> Any:
        """Submits under the worker API settings and the task's GPU resources."""
        with submission("dask", parameters, self.gpus_per_task, self.declared_gpus):
            return super().submit(task, parameters, wait_for=wait_for, dependencies=dependencies)

    def declared_gpus(self) -> float:
        """The worker resource ``GPU`` summed over the cluster's workers, as the scheduler knows them now."""
        workers = self.client.scheduler_info()["workers"].values()
        return float(sum(w.get("resources", {}).get("GPU", 0) for w in workers))


_LOCAL: dict[int, Any] = {}
_LOCK = threading.Lock()


def local_cluster(workers: int) -> str:
    """The scheduler address of this process's local cluster of `workers` worker processes.

    Started on first use and closed when the process exits: the pipeline's three sub-flows (and
    a rerun in the same process) share it instead of paying worker start-up (seconds of imports
    per process) each time.
    """
    from distributed import LocalCluster

    with _LOCK:
        if workers not in _LOCAL:
            # One thread per worker process: torch runs one thread per task (config torch_threads).
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
            atexit.register(cluster.close)
            _LOCAL[workers] = cluster
        return _LOCAL[workers].scheduler_address
