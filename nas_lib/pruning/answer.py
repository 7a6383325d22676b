"""What the LLM is asked to write for a layer, and how it becomes the layer's decision.

The decision models (`GroupDecision`, `HybridMacroDecision`) hold free-form maps (group ->
options, type -> share range). Strict structured output cannot express a map, and small local
models fill a list of small objects more reliably than a map with invented keys, so the model
writes lists of named entries; every field has a default, so a short answer is valid. A model
that writes the maps anyway is understood too. The answer is then turned into the decision
model and checked exactly as strictly as every other provider's decision.

`answer_model` narrows that shape to the layer's groups on the current space: each entry names
one of the real groups and options that the groups offer, every list has a length limit, the depth
is one of the current depths and the rationale is short. A server that decodes with the
schema's grammar (llama.cpp) can then write nothing but a bounded, well-named answer: gemma3-270m
otherwise invented groups until `max_tokens` in the hyperparameters layer and answered a depth
outside the space in the macro layer (docs/llm.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from nas_lib.llm.protocol import validation_problem
from nas_lib.pruning.base import GroupDecision, Groups, Option

RATIONALE_CHARS = 300  # one or two sentences; a grammar-bound model cannot ramble past it
MAX_SEQUENCES = 3  # preferred or forbidden type runs per answer
MAX_RUN = 4  # block types per run


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


def answer_model(decision_model: type[GroupDecision], groups: Groups, extra: Mapping[str, Any] | None = None) -> type[LayerAnswer]:
    """The answer schema for a layer whose decisions are ``decision_model``, bounded by its current
    ``groups`` (and, for the hybrid macro layer, by the ``block_types`` and ``depth_range`` of the
    view's `describe_extra`)."""
    extra = extra or {}
    live = {group: tuple(options) for group, options in groups.items() if options}
    entry: Any = _keep_entry(live)
    fields: dict[str, Any] = {
        "keep": (
            list[entry],
            Field(default_factory=list, max_length=max(len(live), 1), description=LayerAnswer.model_fields["keep"].description),
        ),
        "rationale": (str, Field(default="", max_length=RATIONALE_CHARS, description="one or two sentences")),
    }
    macro = bool(set(decision_model.model_fields) - set(LayerAnswer.model_fields))
    if macro:
        fields.update(_macro_fields(extra.get("block_types") or (), extra.get("depth_range")))
    return create_model(f"{'Macro' if macro else 'Layer'}Answer", __base__=MacroAnswer if macro else LayerAnswer, **fields)


def _keep_entry(groups: Groups) -> type[KeepEntry]:
    """An entry naming one of the groups and some of the options they offer. One flat entry
    rather than one per group keeps the schema, which the prompt shows, short; an option that
    its group does not offer is caught by the semantic check and asked again."""
    if not groups:
        return KeepEntry
    option: Any = one_of(dict.fromkeys(o for opts in groups.values() for o in opts))
    return create_model(
        "KeepGroup",
        __base__=KeepEntry,
        group=(one_of(groups), Field(description="a choice group name, spelled exactly as given")),
        options=(
            list[option],
            Field(min_length=1, max_length=max(map(len, groups.values())), description="the options of that group to keep"),
        ),
    )


def one_of(values: Iterable[Any]) -> Any:
    """``Literal[*values]``: an enum in the JSON schema, built at run time."""
    return Literal.__getitem__(tuple(values))


def _macro_fields(types: Sequence[str], depth_range: Sequence[int] | None) -> dict[str, Any]:
    """Depths among the current ones, shares and runs of the known block types, all bounded."""
    out: dict[str, Any] = {}
    if depth_range:
        depth: Any = one_of(range(int(depth_range[0]), int(depth_range[1]) + 1)) | None
        out["min_depth"] = (depth, Field(default=None, description="fewest blocks (null: unchanged)"))
        out["max_depth"] = (depth, Field(default=None, description="most blocks (null: unchanged)"))
    if types:
        block_type: Any = one_of(types)
        share = create_model("TypeShareOf", __base__=TypeShare, type=(block_type, ...))
        run = Annotated[list[block_type], Field(min_length=2, max_length=MAX_RUN)]
        out["type_fractions"] = (list[share], Field(default_factory=list, max_length=len(types), description="share limits per block type"))
        for name, what in (("preferred_sequences", "to favour"), ("forbidden_sequences", "that may not appear")):
            out[name] = (list[run], Field(default_factory=list, max_length=MAX_SEQUENCES, description=f"runs of block types {what}"))
    return out


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
        return None, [validation_problem(e) for e in exc.errors()]
