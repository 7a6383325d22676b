"""Process settings of a run: torch CPU threads and the devices evaluation spreads over.

Run folders live in `tasks.run_folder`, spaces as values in `tasks.spaces`, the data reference
in `tasks.data_ref`. Nothing here imports Prefect.
"""

from __future__ import annotations

import torch

from tasks.config import PipelineConfig


def apply_runtime(config: PipelineConfig) -> None:
    """Process-wide torch settings of a run (CPU threads)."""
    if config.torch_threads is not None and torch.get_num_threads() != config.torch_threads:
        torch.set_num_threads(config.torch_threads)


def plan_devices(device: str) -> list[str]:
    """The devices evaluation batches spread over: every visible GPU for ``auto``, else one.

    Raises:
        ValueError: the device is unknown or does not exist on this machine (said before any
            work: otherwise every proxy score would fail and the run would stop at training).
    """
    from nas_lib.train.device import resolve_device

    if device == "auto":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(count)] or ["cpu"]
    return [resolve_device(device)]
