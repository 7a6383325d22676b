"""Turning a model's text into a JSON object, and telling refusals from bad answers."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pydantic import BaseModel

_REFUSAL = re.compile(
    r"^\W*(i['’]?m sorry|i am sorry|sorry[,.! ]|i can(?:not|['’]?t)\b|i won['’]?t\b|i will not\b|"
    r"i am unable|i['’]?m unable|i am not able|i['’]?m not able|as an ai\b|i must decline|i refuse)",
    re.IGNORECASE,
)
# Keywords some strict structured-output implementations reject. They only narrow values, which
# the client re-checks locally with pydantic, so dropping them from the request loses nothing.
_UNSUPPORTED_STRICT_KEYS = (
    "default",
    "examples",
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "patternProperties",
)
_SCHEMA_MAPS = ("properties", "$defs", "definitions")  # name -> schema: the names are not keywords
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_CHILDREN = ("items", "additionalProperties", "not")


def extract_json_object(text: str | None) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (bare, fenced or inside prose), or None.

    Tries the whole text first, then every ``{`` in order, so a preamble such as
    "Here is the JSON:" or a markdown fence does not hide the answer. Raw control characters
    (a newline) inside strings are accepted: llama.cpp's JSON grammar lets a small model write them.
    """
    if not text:
        return None
    stripped = text.strip()
    try:
        value = json.loads(stripped, strict=False)
        return value if isinstance(value, dict) else None
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder(strict=False)
    for match in re.finditer(r"\{", stripped):
        try:
            value, _ = decoder.raw_decode(stripped, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def looks_like_refusal(text: str | None) -> bool:
    """True for an answer that declines the task (and therefore holds no JSON)."""
    return text is not None and bool(text) and extract_json_object(text) is None and bool(_REFUSAL.match(text.strip()))


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def strict_schema(model: type[BaseModel]) -> tuple[dict[str, Any], bool]:
    """The model's JSON schema adapted to strict structured output, and whether strict is possible.

    Strict mode needs every object closed (``additionalProperties: false``) with all its
    properties required; a free-form mapping (``dict[str, X]``) cannot be expressed, so such
    schemas are sent non-strict and validated locally like every answer.
    """
    schema = copy.deepcopy(schema_of(model))
    can_be_strict = _close_objects(schema)
    return schema, can_be_strict


def _close_objects(node: Any) -> bool:
    """Closes every object schema under ``node`` in place; False if one cannot be closed."""
    if not isinstance(node, dict):
        return True
    for key in _UNSUPPORTED_STRICT_KEYS:
        node.pop(key, None)
    ok = True
    if node.get("type") == "object":
        if isinstance(node.get("additionalProperties"), dict) or "properties" not in node:
            ok = False
        else:
            node["additionalProperties"] = False
            node["required"] = list(node["properties"])
    for key in _SCHEMA_MAPS:
        ok = all([_close_objects(sub) for sub in node.get(key, {}).values()]) and ok
    for key in _SCHEMA_LISTS:
        ok = all([_close_objects(sub) for sub in node.get(key, [])]) and ok
    for key in _SCHEMA_CHILDREN:
        ok = _close_objects(node.get(key)) and ok
    return ok
