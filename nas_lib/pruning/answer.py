"""What the LLM is asked to write for a layer, and how it becomes the layer's decision.

The decision models (`GroupDecision`, `HybridMacroDecision`) hold free-form maps (group ->
options, type -> share range). Strict structured output cannot express a map, and small local
models fill a list of small objects more reliably than a map with invented keys, so the model
writes lists of named entries; every field has a default, so a short answer is valid. A model
that writes the maps anyway is understood too. The answer is then turned into the decision
model and checked exactly as strictly as every other provider's decision.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nas_lib.pruning.base import GroupDecision, Option


class KeepEntry(BaseModel):
    """One cut choice group: the options to keep."""

    model_config = ConfigDict(extra="forbid")

    group: str = Field(description="a choice group name, spelled exactly as given")
    options: list[Option] = Field(description="the options of that group to keep")


class TypeShare(BaseModel):
    """The allowed share of one block type among all blocks."""

    model_config = ConfigDict(extra="forbid")

    type: str
    min: float = Field(ge=0.0, le=1.0)
    max: float = Field(ge=0.0, le=1.0)


def _entries(value: Any, make: Any) -> Any:
    """A map written by the model (``{"stage:early": ["cnn"]}``) as a list of entries."""
    return [make(k, v) for k, v in value.items()] if isinstance(value, dict) else value


class LayerAnswer(BaseModel):
    """The answer for a layer that only cuts choice groups."""

    model_config = ConfigDict(extra="forbid")

    keep: list[KeepEntry] = Field(default_factory=list, description="only the groups you cut; a group left out keeps all its options")
    rationale: str = Field(default="", description="one or two sentences")

    @field_validator("keep", mode="before")
    @classmethod
    def _keep_map(cls, value: Any) -> Any:
        return _entries(value, lambda k, v: {"group": k, "options": v})


class MacroAnswer(LayerAnswer):
    """The hybrid macro answer: groups plus depth range, type shares and type sequences."""

    min_depth: int | None = Field(default=None, description="fewest blocks (null: unchanged)")
    max_depth: int | None = Field(default=None, description="most blocks (null: unchanged)")
    type_fractions: list[TypeShare] = Field(default_factory=list, description="share limits per block type")
    preferred_sequences: list[list[str]] = Field(default_factory=list, description="runs of block types to favour")
    forbidden_sequences: list[list[str]] = Field(default_factory=list, description="runs of block types that may not appear")

    @field_validator("type_fractions", mode="before")
    @classmethod
    def _fractions_map(cls, value: Any) -> Any:
        return _entries(
            value, lambda k, v: {"type": k, "min": v[0], "max": v[1]} if isinstance(v, (list, tuple)) and len(v) == 2 else {"type": k, "range": v}
        )


def answer_model(decision_model: type[GroupDecision]) -> type[LayerAnswer]:
    """The answer schema for a layer whose decisions are ``decision_model``."""
    extra = set(decision_model.model_fields) - set(LayerAnswer.model_fields)
    return MacroAnswer if extra else LayerAnswer


def to_decision(answer: LayerAnswer, decision_model: type[GroupDecision]) -> tuple[GroupDecision | None, list[str]]:
    """The decision ``answer`` stands for, or None and what is wrong with it."""
    groups = [entry.group for entry in answer.keep]
    repeated = sorted({g for g in groups if groups.count(g) > 1})
    if repeated:
        return None, [f"keep: group {g!r} appears more than once" for g in repeated]
    data = answer.model_dump()
    data["keep"] = {entry.group: entry.options for entry in answer.keep}
    if isinstance(answer, MacroAnswer):
        data["type_fractions"] = {s.type: (s.min, s.max) for s in answer.type_fractions}
    data = {k: v for k, v in data.items() if k in decision_model.model_fields}
    try:
        return decision_model.model_validate(data), []
    except ValidationError as exc:
        return None, [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
