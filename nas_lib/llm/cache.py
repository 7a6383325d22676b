"""On-disk cache of validated answers, keyed by model, prompt and schema.

A rerun with the same prompt pays nothing. Entries hold the answer and its token cost only:
no key, no headers, no endpoint secrets.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nas_lib.artifacts import atomic_write_json

CACHE_FORMAT = 1  # bump when the entry layout or the key recipe changes


def cache_key(*, model: str, system: str, user: str, schema: dict[str, Any], temperature: float) -> str:
    """sha256 over (model, prompt hash, schema hash, temperature)."""
    prompt_hash = hashlib.sha256(json.dumps([system, user]).encode()).hexdigest()
    schema_hash = hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()
    blob = json.dumps([CACHE_FORMAT, model, prompt_hash, schema_hash, temperature])
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """JSON files under ``root/<key[:2]>/<key>.json``; unreadable entries count as misses."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # a torn or foreign file is just a miss; the next success overwrites it
        return entry if isinstance(entry, dict) and "value" in entry else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        atomic_write_json(self.path(key), entry)
