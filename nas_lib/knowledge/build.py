"""``knowledge add``: PDFs -> chunks -> per-chunk analyses -> per-paper synthesis -> Parquet.

A document already analysed (same sha256, not failed) is skipped, so a rerun costs nothing.
A file that cannot be read gets a failed row with the reason and the other files go on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nas_lib.knowledge.analysis import PROMPT_VERSION
from nas_lib.knowledge.chunking import chunk_text
from nas_lib.knowledge.extractors import Extractor
from nas_lib.knowledge.pdf import Document, DocumentError, ExtractionLimits, file_sha256, read_document
from nas_lib.knowledge.store import SYNTHESIS_ID, read_rows, write_rows, write_tips

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddOutcome:
    """What happened to one input file. status: added | skipped | failed."""

    path: str
    status: str
    doc_sha256: str | None = None
    chunks: int = 0
    fallbacks: int = 0
    error: str | None = None


def expand_inputs(paths: Iterable[Path]) -> list[Path]:
    """Files as given (whatever their suffix) plus the ``*.pdf`` files under given folders."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")
        else:
            out.append(path)
    return out


def add_documents(paths: Iterable[Path], out_dir: Path, extractor: Extractor, limits: ExtractionLimits = ExtractionLimits()) -> list[AddOutcome]:
    """Analyses every new document under ``paths`` into ``out_dir`` (knowledge.parquet, tips.md).

    Args:
        paths: PDF files and/or folders (searched recursively for ``*.pdf``).
        out_dir: where ``knowledge.parquet`` and ``tips.md`` live; created if missing.
        extractor: who writes the analyses (see `EXTRACTORS`).
        limits: size and chunking bounds.

    Returns:
        One `AddOutcome` per input file, in input order.
    """
    out_dir = Path(out_dir)
    frame = read_rows(out_dir)
    outcomes = []
    for path in expand_inputs(paths):
        outcome, rows = add_one(path, frame, extractor, limits)
        outcomes.append(outcome)
        if rows:
            # A failed file is re-checked on every run (cheap); its old row is replaced.
            frame = frame[~((frame["path"] == str(path)) & (frame["state"] == "failed"))]
            frame = pd.concat([frame, pd.DataFrame(rows)], ignore_index=True) if len(frame) else pd.DataFrame(rows)
            write_rows(out_dir, frame)  # after each paper: a crash loses at most the current one
    write_rows(out_dir, frame)
    write_tips(out_dir, frame)
    return outcomes


def add_one(path: Path, frame: pd.DataFrame, extractor: Extractor, limits: ExtractionLimits) -> tuple[AddOutcome, list[dict[str, Any]]]:
    known = set(frame.loc[frame["state"] != "failed", "doc_sha256"]) if len(frame) else set()
    try:
        sha = file_sha256(path) if path.is_file() else None
        if sha is not None and sha in known:
            log.info("knowledge: %s already analysed (sha256 %s), skipped", path, sha[:12])
            return AddOutcome(str(path), "skipped", sha), []
        document = read_document(path, limits)
    except (DocumentError, OSError) as exc:
        reason = str(exc) if isinstance(exc, DocumentError) else f"unreadable: {type(exc).__name__}: {exc}"
        log.warning("knowledge: %s failed: %s", path, reason)
        return AddOutcome(str(path), "failed", sha, error=reason), [failed_row(path, sha, reason)]
    rows = analyse_document(document, extractor, limits)
    fallbacks = sum(row["state"] == "fallback" for row in rows)
    return AddOutcome(str(path), "added", document.sha256, chunks=len(rows) - 1, fallbacks=fallbacks), rows


def analyse_document(document: Document, extractor: Extractor, limits: ExtractionLimits) -> list[dict[str, Any]]:
    """Chunk rows then the synthesis row of one readable document."""
    chunks = chunk_text(document.text, limits.chunk_chars, limits.chunk_overlap)
    rows, outcomes = [], []
    for i, chunk in enumerate(chunks):
        outcomes.append(extractor.analyze_chunk(document.title, i, len(chunks), chunk))
        rows.append(row_of(document, i, chunk, outcomes[-1]))
    # One chunk is its own synthesis (state and model included): no merge call to pay for.
    synthesis = outcomes[0] if len(outcomes) == 1 else extractor.synthesize(document.title, [o.analysis for o in outcomes])
    rows.append(row_of(document, SYNTHESIS_ID, "", synthesis))
    return rows


def row_of(document: Document, chunk_id: int, text: str, outcome: Any) -> dict[str, Any]:
    return {
        "doc_sha256": document.sha256,
        "title": document.title,
        "path": str(document.path),
        "pages": document.pages,
        "chunk_id": chunk_id,
        "text": text,
        "analysis_json": outcome.analysis.model_dump_json(),
        "model": outcome.model,
        "prompt_version": PROMPT_VERSION,
        "state": outcome.state,
        "error": outcome.error,
        "llm_json": outcome.llm,
    }


def failed_row(path: Path, sha: str | None, reason: str) -> dict[str, Any]:
    return {
        "doc_sha256": sha or "",
        "title": Path(path).name,
        "path": str(path),
        "pages": 0,
        "chunk_id": SYNTHESIS_ID,
        "text": "",
        "analysis_json": None,
        "model": None,
        "prompt_version": PROMPT_VERSION,
        "state": "failed",
        "error": reason,
    }
