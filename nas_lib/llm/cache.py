"""On-disk cache of validated answers, keyed by endpoint, model, prompt and schema, and the
structured-output mode each (endpoint, model) was found to accept.

A rerun with the same prompt pays nothing. Entries hold the answer and its token cost only:
no key, no headers, no endpoint secrets. The modes live in ``modes.json`` beside the entries, so
a server that rejects json_schema is asked in json_object from the first call of the next run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nas_lib.artifacts import atomic_write_json

CACHE_FORMAT = 2  # bump when the entry layout or the key recipe changes (2: base URL in the key)
MODES_FILE = "modes.json"


def cache_key(*, base_url: str | None, model: str, system: str, user: str, schema: dict[str, Any], temperature: float) -> str:
    """sha256 over (base URL, model, prompt hash, schema hash, temperature).

    The base URL is part of it: two servers may serve different weights under one model name.
    """
    prompt_hash = hashlib.sha256(json.dumps([system, user]).encode()).hexdigest()
    schema_hash = hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()
    blob = json.dumps([CACHE_FORMAT, base_url or "", model, prompt_hash, schema_hash, temperature])
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


class ModeMemory:
    """``root/modes.json``: {"<base URL> <model>": mode}; written atomically, read leniently.

    Two runs writing at once may lose one entry; the loser just negotiates again next time.
    """

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / MODES_FILE

    @staticmethod
    def key(base_url: str | None, model: str) -> str:
        return f"{(base_url or 'default').rstrip('/')} {model}"

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing, torn or foreign: nothing learned yet
        return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}

    def get(self, base_url: str | None, model: str) -> str | None:
        return self._load().get(self.key(base_url, model))

    def put(self, base_url: str | None, model: str, mode: str) -> None:
        data = self._load()
        if data.get(self.key(base_url, model)) == mode:
            return
        data[self.key(base_url, model)] = mode
        atomic_write_json(self.path, data)
