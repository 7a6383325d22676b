"""Parquet artifacts: explicit schema, zstd, atomic writes (temporary name, then rename).

Every pipeline step writes one file this way, so a killed run never leaves half a file behind
and a rerun can trust whatever file exists.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_table(path: str | Path, rows: Iterable[Mapping[str, Any]] | pd.DataFrame, schema: pa.Schema) -> Path:
    """Writes rows as Parquet with exactly `schema` (missing columns are null, extra ones raise)."""
    path = Path(path)
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    extra = set(frame.columns) - set(schema.names)
    if extra:
        raise ValueError(f"{path.name}: columns {sorted(extra)} are not in the schema {schema.names}")
    for name in schema.names:
        if name not in frame.columns:
            frame[name] = None
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """Reads a Parquet artifact into a DataFrame."""
    return pq.read_table(path).to_pandas()
