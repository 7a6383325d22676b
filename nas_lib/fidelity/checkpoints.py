"""Rung checkpoints on disk, keyed like the rung scores of the evaluation store.

A checkpoint only saves time: a rung whose checkpoint is gone trains from epoch 1 and, on the
same device, reaches the same score (the continuation is exact). So the folder may be deleted
at any time; the scores, which the search depends on, live in the evaluation store. Only the
flow writes here (one file per key, written to a temporary name and renamed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from nas_lib.artifacts import atomic_write_bytes


class CheckpointStore:
    """A folder of rung checkpoints (`nas_lib.fidelity.training` bytes), one file per store key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: Sequence[object]) -> Path:
        digest = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:32]
        return self.root / f"{digest}.pt"

    def get(self, key: Sequence[object]) -> bytes | None:
        """The checkpoint saved under `key`, or None."""
        path = self.path(key)
        return path.read_bytes() if path.is_file() else None

    def put(self, key: Sequence[object], checkpoint: bytes) -> Path:
        """Saves `checkpoint` under `key` (atomically; a later save replaces it)."""
        return atomic_write_bytes(self.path(key), checkpoint)

    def count(self) -> int:
        """Number of saved checkpoints."""
        return sum(1 for _ in self.root.glob("*.pt")) if self.root.is_dir() else 0
