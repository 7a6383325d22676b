"""The steps of a pipeline run, in order: one enum every layer of the project names them by.

A step's value is its file stem (``06_evaluations`` -> ``06_evaluations.parquet``). The pruning
steps come from the pruning layers themselves (`nas_lib.pruning.run.LAYER_REGISTRY`, in
registration order), so a new layer gets its step, its number and its place in the ledger from
its registration alone; the steps after the layers are numbered on from there. Code names a step
by its member (``Step.SEARCH``), never by its file name, so a new layer shifts no literal.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum, auto
from typing import TYPE_CHECKING

import nas_lib.pruning  # noqa: F401 - registers the layers before the registry is read
from nas_lib.pruning.run import LAYER_REGISTRY

_BEFORE = ("knowledge",)
_AFTER = ("population", "evaluations", "search", "training", "registry")


def step_members(layers: Sequence[str]) -> dict[str, str]:
    """Member name -> file stem of every step when `layers` are the pruning layers, in run order
    (``{"KNOWLEDGE": "01_knowledge", "MACRO": "02_macro", ...}``): what `Step` is built from."""
    names = [*_BEFORE, *layers, *_AFTER]
    return {name.upper(): f"{i:02d}_{name}" for i, name in enumerate(names, 1)}


if TYPE_CHECKING:
    # What a type checker sees: the fixed steps of `_BEFORE` and `_AFTER` (tests/test_steps_typing.py
    # keeps the two lists equal); the layers' steps exist only at run time (`LAYER_STEPS`, `Step[name]`).
    class Step(StrEnum):
        """A pipeline step."""

        KNOWLEDGE = auto()
        POPULATION = auto()
        EVALUATIONS = auto()
        SEARCH = auto()
        TRAINING = auto()
        REGISTRY = auto()
else:
    Step = StrEnum("Step", step_members(LAYER_REGISTRY.in_order()))  # members: KNOWLEDGE, MACRO, ..., REGISTRY
    Step.__doc__ = "A pipeline step; its value is the stem of its Parquet file (``Step.SEARCH == '07_search'``)."

LAYER_STEPS: dict[str, Step] = {layer: Step[layer.upper()] for layer in LAYER_REGISTRY.in_order()}


def parse_step(name: str) -> Step:
    """The step called `name` (``06_evaluations``); a ValueError lists the steps otherwise."""
    try:
        return Step(name)
    except ValueError:
        raise ValueError(f"unknown step {name!r}; steps: {', '.join(Step)}") from None
