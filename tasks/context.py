"""Process settings of a run: torch CPU threads and the devices evaluation spreads over.

The flow plans devices on its own machine only when its tasks run there (the thread runner or a
local cluster). On a cluster at an address it passes the config's device request as it is, and
each task turns it into a device and a thread count on the machine that runs it (`on_worker`).

Run folders live in `tasks.run_folder`, spaces as values in `tasks.spaces`, the data reference
in `tasks.data_ref`. Nothing here imports Prefect.
"""

from __future__ import annotations

import os
import sys

import torch

from tasks.config import ExecutionConfig, PipelineConfig


def apply_runtime(config: PipelineConfig) -> None:
    """Process-wide torch settings of a run (CPU threads)."""
    if config.torch_threads is not None and torch.get_num_threads() != config.torch_threads:
        torch.set_num_threads(config.torch_threads)


def plan_devices(device: str, execution: ExecutionConfig | None = None) -> list[str]:
    """The devices evaluation batches spread over: every visible GPU for ``auto``, else one.

    On a cluster at an address (``execution.address``), the request itself: the flow's machine
    says nothing about the workers', so each task resolves it where it runs (`on_worker`).

    Raises:
        ValueError: the device is unknown or does not exist on this machine (said before any
            work: otherwise every proxy score would fail and the run would stop at training).
    """
    from nas_lib.train.device import check_device_name, resolve_device

    if execution is not None and execution.runner != "thread" and execution.address:
        return [check_device_name(device)]
    if device == "auto":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(count)] or ["cpu"]
    return [resolve_device(device)]


def on_worker(device: str, torch_threads: int | None) -> tuple[str, int]:
    """What a task does first, on the machine that runs it: resolves its device there and sets
    torch's CPU threads.

    Args:
        device: the planned device or the config's request (``auto``, ``cuda``...).
        torch_threads: the config's threads; None lets a cluster worker choose from its own cores
            (`cluster_threads`) and leaves torch's default elsewhere.

    Returns:
        The device (``cpu`` or ``cuda:N``) and the threads torch now uses.
    """
    from nas_lib.train.device import resolve_device

    threads = torch_threads or cluster_threads()
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return resolve_device(device), torch.get_num_threads()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cluster_threads() -> int | None:
    """The torch threads of a task on a cluster worker, from that worker's own machine: a Dask
    worker's cores shared by its task threads, or the CPUs Ray assigned to the task; None
    outside a cluster worker."""
    if "distributed" in sys.modules:
        from distributed import get_worker

        try:
            slots = get_worker().state.nthreads
        except ValueError:  # not in a Dask worker
            pass
        else:
            return max(1, usable_cores() // max(1, slots))
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized() and ray.get_runtime_context().get_task_id() is not None:
            return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    return None
