"""Multi-fidelity evaluation: successive halving and Hyperband over training epochs.

`halving` is the pure ask/tell planner (no torch, no Prefect); the training rungs that it plans
are run by `tasks.fidelity` and composed by `flows.stages`.
"""

from nas_lib.fidelity.halving import HalvingConfig, SuccessiveHalving, hyperband

__all__ = ["HalvingConfig", "SuccessiveHalving", "hyperband"]
