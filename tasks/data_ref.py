"""`DataRef`: the run's dataset as a small value a worker on another machine can resolve.

A task never receives the dataset (megabytes of tensors) nor a run folder to find it in; it
receives this reference and calls `load()`, which loads once per process and reuses the result
for every later task on that worker. The path is a local path or an fsspec URL (``s3://``,
``gs://``, ``file://``, ...): a remote file or folder is copied once into a local cache folder
and read from there, so every loader in `nas_lib.data` works on it unchanged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict

CACHE_ENV = "EHNAS_DATA_CACHE"


class DataRef(BaseModel):
    """Everything that identifies the run's `ImageDataset` (hashable, picklable, frozen)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    path: str | None = None
    image_size: int | None = None
    val_fraction: float = 0.2
    seed: int = 0
    max_items: int | None = None
    max_corrupt_fraction: float = 0.01

    @classmethod
    def of(cls, config: Any) -> DataRef:
        """The reference of a `PipelineConfig`'s data section under its seed."""
        d = config.data
        return cls(
            kind=d.kind,
            path=d.path,
            image_size=d.image_size,
            val_fraction=d.val_fraction,
            seed=config.seed,
            max_items=d.max_items,
            max_corrupt_fraction=d.max_corrupt_fraction,
        )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> DataRef:
        """The reference of stored data options (a run's data section plus ``seed``, as a registered
        model's ``ehnas.json`` keeps them); keys a reference does not hold are ignored.

        Raises:
            KeyError: ``kind`` is missing.
        """
        return cls(kind=options["kind"], **{k: options[k] for k in cls.model_fields if k != "kind" and k in options})

    def load(self) -> Any:
        """The `ImageDataset` (loaded on the first call in this process, then reused)."""
        return _load(self)


def local_path(path: str) -> str:
    """`path` itself when it is local; else the local copy of the fsspec URL (made on first use).

    Raises:
        FileNotFoundError: the URL names nothing.
    """
    import fsspec
    from fsspec.utils import get_protocol

    protocol = get_protocol(path)
    if protocol in ("file", "local"):
        return path.split("://", 1)[1] if "://" in path else path
    fs, inner = fsspec.core.url_to_fs(path)
    if not fs.exists(inner):
        raise FileNotFoundError(f"data path {path} does not exist")
    name = inner.rstrip("/").rsplit("/", 1)[-1] or "data"
    target = _cache_root() / hashlib.sha256(path.encode()).hexdigest()[:16] / name
    if not target.exists():
        partial = target.with_name(f".{name}.partial-{os.getpid()}")
        fs.get(inner, str(partial), recursive=fs.isdir(inner))
        partial.rename(target)  # a reader never sees a half copied folder
    return str(target)


def _cache_root() -> Path:
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ehnas" / "data")
    root.mkdir(parents=True, exist_ok=True)
    return root


@lru_cache(maxsize=4)
def _load(ref: DataRef) -> Any:
    from nas_lib.data.datasets import load_dataset

    path = local_path(ref.path) if ref.path else None
    return load_dataset(
        ref.kind,
        path,
        image_size=ref.image_size,
        val_fraction=ref.val_fraction,
        seed=ref.seed,
        max_items=ref.max_items,
        max_corrupt_fraction=ref.max_corrupt_fraction,
    )


def proxy_batch(data: Any, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded batch of `n` training images: every proxy scores every network on it."""
    from nas_lib.data.arrays import training_batch

    return training_batch(data, n, seed)
