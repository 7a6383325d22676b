"""Parquet artifacts: explicit schema, zstd, atomic writes (temporary name, then rename).

Every pipeline step writes one file this way, so a killed run never leaves half a file behind
and a rerun can trust whatever file exists.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class DiskFullError(OSError):
    """The disk (or quota) holding `path` is full; nothing was written there."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(errno.ENOSPC, f"disk full: could not write {path} (free space on {Path(path).parent} and rerun: finished steps are kept)")
        self.path = str(path)


class DamagedFileError(ValueError):
    """A file that should hold a finished artifact cannot be read (truncated or overwritten)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path} is damaged ({reason})")
        self.path, self.reason = str(path), reason


@contextlib.contextmanager
def disk_full_as_error(path: str | Path) -> Iterator[None]:
    """Turns ENOSPC (and torch's opaque write failures on a full disk) into `DiskFullError(path)`."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(path) from err
        raise
    except RuntimeError as err:  # torch.save reports a short write as "unexpected pos"
        if "unexpected pos" in str(err) and _disk_is_full(Path(path).parent):
            raise DiskFullError(path) from err
        raise


def _disk_is_full(folder: Path) -> bool:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 1 << 20


def file_digest(path: str | Path) -> dict[str, Any]:
    """``{"size": bytes, "sha256": hex}`` of a file (what the step ledger records)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"size": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with disk_full_as_error(path):
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


def read_json_lines(path: str | Path) -> list[dict[str, Any]]:
    """The finished lines of an append-only JSON-lines file (none if it does not exist). A torn
    last line, from a run killed while writing it, is dropped; a damaged line before it is a
    ValueError naming the line."""
    path = Path(path)
    texts = [t for t in path.read_text().splitlines() if t.strip()] if path.exists() else []
    lines = []
    for number, text in enumerate(texts, 1):
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError as err:
            if number < len(texts):
                raise ValueError(f"{path}, line {number}: not a JSON line ({err.msg}); remove or mend it") from None
    return lines


def append_json_line(path: str | Path, obj: Any) -> None:
    """Appends `obj` to a JSON-lines file as one line, flushed to disk. A torn last line (no
    final newline: a run killed while writing it) is cut off first, so the new line stands on
    its own and every earlier one stays readable."""
    with open(path, "a+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size:
            fh.seek(0)
            data = fh.read()
            if not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)
        fh.write((json.dumps(obj) + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


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
    with disk_full_as_error(path):
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
    """Reads a Parquet artifact into a DataFrame.

    Raises:
        FileNotFoundError: there is no such file.
        DamagedFileError: the file exists but is not a readable Parquet table.
    """
    try:
        return pq.read_table(path).to_pandas()
    except (FileNotFoundError, PermissionError):
        raise
    except (pa.ArrowException, OSError) as err:
        raise DamagedFileError(path, str(err).splitlines()[0][:200]) from None
