"""The structured rules file (``rules.json``) and its checks against the hybrid space.

The offline pruning provider reads these rules instead of asking an LLM. Layout (all keys
optional except ``version``; block types, stages, fields and values use the hybrid space's names):

- ``stage_preferences``: ``{stage: {type: score 0..1}}``
- ``stage_types``: ``{stage: {"types": [...], "confidence", "sources", "why"}}``
- ``preferred_sequences`` / ``forbidden_sequences``: ``[{"sequence": [types], "confidence", ...}]``
- ``type_fractions``: ``{type: {"range": [min, max], "confidence", ...}}``
- ``depth``: ``{"min", "max", "confidence", ...}``
- ``connections``: ``{"prefer": [...], "allow": [...], "confidence", ...}``
- ``hyperparameters``: ``{type: {field: {"prefer": [values], "confidence", ...}}}``
- ``head_dim_pairs``: ``{"prefer": [[num_heads, qkv_dim], ...], ...}``
- ``rules``: ``[{"id", "statement", "confidence", "sources"}]`` (free text for prompts)
- ``sources``: ``{key: {"title", "year", "arxiv"}}``; every ``sources`` list names keys here.
- ``pruning``: the confident rules in the offline pruning provider's format
  (`nas_lib.pruning.rules`): ``{"hybrid": {layer: {"avoid": {group: [options]},
  "preferred_sequences": [[types]], "forbidden_sequences": [[types]]}}}`` with groups
  ``stage:<stage>`` (macro), ``<type>.<field>`` (hyperparameters), ``stage:<stage>`` or
  ``pair:<type>-><type>`` (connections).
"""

from __future__ import annotations

from typing import Any


def rules_problems(rules: dict[str, Any]) -> list[str]:
    """Every way ``rules`` disagrees with the layout above or with the hybrid space."""
    # Imported here: the space pulls in torch, which loading knowledge does not need.
    from nas_lib.space.constraints import CONNECTIONS, MAX_DEPTH, MIN_DEPTH, block_types

    types, out = set(block_types()), []
    if not isinstance(rules.get("version"), int):
        out.append("version must be an integer")
    for stage, prefs in rules.get("stage_preferences", {}).items():
        out += _stage(stage) + [f"stage_preferences.{stage}: {t!r} {s}" for t, s in prefs.items() if t not in types or not 0 <= s <= 1]
    for stage, entry in rules.get("stage_types", {}).items():
        out += _stage(stage) + _types(f"stage_types.{stage}", entry.get("types", []))
    for key in ("preferred_sequences", "forbidden_sequences"):
        for entry in rules.get(key, []):
            out += _types(key, entry.get("sequence", []), min_len=2)
    for t, entry in rules.get("type_fractions", {}).items():
        lo, hi = entry.get("range", (None, None))
        if t not in types or not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and 0 <= lo <= hi <= 1):
            out.append(f"type_fractions.{t}: needs a known type and 0 <= min <= max <= 1")
    depth = rules.get("depth", {})
    if depth and not MIN_DEPTH <= depth.get("min", MIN_DEPTH) <= depth.get("max", MAX_DEPTH) <= MAX_DEPTH:
        out.append(f"depth must lie within {MIN_DEPTH}..{MAX_DEPTH}")
    conns = rules.get("connections", {})
    out += [f"connections: unknown {c!r}" for c in conns.get("prefer", []) + conns.get("allow", []) if c not in CONNECTIONS]
    out += _hyperparameters(rules.get("hyperparameters", {}))
    out += _pruning(rules.get("pruning", {}).get("hybrid", {}))
    out += _sources(rules)
    out += _confidences(rules)
    return out


def _stage(stage: str) -> list[str]:
    from nas_lib.space.constraints import STAGES

    return [] if stage in STAGES else [f"unknown stage {stage!r} (stages: {', '.join(STAGES)})"]


def _types(where: str, seq: list[str], min_len: int = 1) -> list[str]:
    from nas_lib.space.constraints import block_types

    bad = [t for t in seq if t not in block_types()]
    out = [f"{where}: unknown block type {t!r}" for t in bad]
    return out + ([f"{where}: needs {min_len}+ types, got {seq}"] if len(seq) < min_len else [])


def _hyperparameters(hp: dict[str, Any]) -> list[str]:
    from nas_lib.space.constraints import full_hyperparameters

    full, out = full_hyperparameters(), []
    for t, fields in hp.items():
        if t not in full:
            out.append(f"hyperparameters: unknown block type {t!r}")
            continue
        for name, entry in fields.items():
            if name not in full[t]:
                out.append(f"hyperparameters.{t}: unknown field {name!r}")
                continue
            out += [f"hyperparameters.{t}.{name}: {v} not in {list(full[t][name])}" for v in entry.get("prefer", []) if v not in full[t][name]]
    return out


def _pruning(layers: dict[str, Any]) -> list[str]:
    """Checks the hybrid pruning rules against each layer's choice groups on the full hybrid space.

    The groups and their options come from the layer's own view of the space
    (`SearchSpace.prune_view`), so a new layer's rules are checked without naming it here.
    """
    from nas_lib.space.hybrid import HybridSpace

    full, out = HybridSpace(), []
    for layer, entry in layers.items():
        try:
            groups = full.prune_view(layer).groups()
        except KeyError as err:
            out.append(f"pruning.hybrid.{layer}: {err.args[0]}")
            continue
        for group, options in entry.get("avoid", {}).items():
            if group not in groups:
                out.append(f"pruning.hybrid.{layer}: unknown group {group!r}")
                continue
            out += [f"pruning.hybrid.{layer}.{group}: {o!r} is not an option" for o in options if o not in groups[group]]
        for key in ("preferred_sequences", "forbidden_sequences"):
            for seq in entry.get(key, []):
                out += _types(f"pruning.hybrid.{layer}.{key}", seq, min_len=2)
    return out


def _sources(rules: dict[str, Any]) -> list[str]:
    known = set(rules.get("sources", {}))
    cited = [s for entry in _entries(rules) for s in entry.get("sources", [])]
    return [f"cites unknown source {s!r}" for s in sorted(set(cited) - known)]


def _confidences(rules: dict[str, Any]) -> list[str]:
    return [f"confidence {e['confidence']} outside [0, 1]" for e in _entries(rules) if "confidence" in e and not 0 <= e["confidence"] <= 1]


def _entries(node: Any) -> list[dict[str, Any]]:
    """Every dict nested in ``node`` (where sources and confidences live)."""
    if isinstance(node, dict):
        return [node] + [e for v in node.values() for e in _entries(v)]
    if isinstance(node, list):
        return [e for v in node for e in _entries(v)]
    return []
