"""Knowledge task: the rules the pruning layers read (``01_knowledge.parquet``).

With ``knowledge.documents`` set, papers are first turned into a knowledge table (by the LLM when
one is configured, retried on transient endpoint faults, else offline); otherwise the given
table or the embedded base is used. The rows carry the whole knowledge (sections and rules), so
the pruning tasks get it from them as a value (`knowledge_from_rows`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.config import KnowledgeConfig
from tasks.retry import retry_transient

KNOWLEDGE_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("kind", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("chars", pa.int64()),
        ("origin", pa.string()),
        ("knowledge_fingerprint", pa.string()),
        ("state", pa.string()),
        ("note", pa.string()),
    ]
)


def knowledge_source(section: KnowledgeConfig, extraction_dir: str | Path) -> Path | None:
    """Where the knowledge comes from: the papers extracted into `extraction_dir` (when
    ``documents`` are configured), the configured path, or None (the embedded base)."""
    if section.documents:
        return Path(extraction_dir)
    return Path(section.path) if section.path else None


def extract_documents(documents: Sequence[str], extraction_dir: str | Path) -> None:
    """Turns papers into ``<extraction_dir>/knowledge.parquet`` (LLM when configured); papers
    extracted before are skipped, so the folder is this step's own incremental cache."""
    from nas_lib.knowledge import EXTRACTORS, add_documents, expand_inputs
    from nas_lib.llm import LLMSettings

    settings = LLMSettings.from_env()
    extractor = EXTRACTORS.get("openai" if settings.configured else "offline").from_settings(settings)
    add_documents(expand_inputs([Path(p) for p in documents]), Path(extraction_dir), extractor)


def _llm() -> Any:
    from nas_lib.llm import LLMSettings

    settings = LLMSettings.from_env()
    return settings if settings.configured else None


def build_knowledge_rows(section: KnowledgeConfig, extraction_dir: str | Path) -> list[dict[str, Any]]:
    """Extracts (when documents are configured) and loads the knowledge: one row per section plus the rules."""
    from nas_lib.knowledge import load_knowledge

    if section.documents:
        extract_documents(section.documents, extraction_dir)
    kb = load_knowledge(knowledge_source(section, extraction_dir), llm=_llm())
    common = {"origin": kb.origin, "knowledge_fingerprint": kb.fingerprint, "state": "ok", "note": None}
    rows = [
        {"item_id": f"section-{i}", "kind": "section", "title": s.title, "text": s.body, "chars": len(s.body), **common}
        for i, s in enumerate(kb.sections)
    ]
    rules = json.dumps(kb.rules, sort_keys=True, default=str)
    return rows + [{"item_id": "rules", "kind": "rules", "title": "structured rules", "text": rules, "chars": len(rules), **common}]


def knowledge_from_rows(rows: Sequence[dict[str, Any]]) -> Any:
    """The `KnowledgeBase` the rows of ``01_knowledge`` describe (the LLM, when configured,
    summarises over-long text), so later tasks get the knowledge as a value, not as a path."""
    from nas_lib.knowledge.base import KnowledgeBase, Section
    from nas_lib.llm import LLMClient

    sections = [Section(r["title"], r["text"]) for r in rows if r["kind"] == "section"]
    rules: dict[str, Any] = next((json.loads(r["text"]) for r in rows if r["kind"] == "rules"), {})
    settings = _llm()
    origin = str(rows[0]["origin"]) if rows else "none"
    return KnowledgeBase(sections, rules, origin, LLMClient(settings) if settings is not None else None)


@task(name="knowledge", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def knowledge_step(section: KnowledgeConfig, extraction_dir: str) -> list[dict[str, Any]]:
    """The rows of ``01_knowledge`` (LLM extraction retried on transient faults)."""
    return build_knowledge_rows(section, extraction_dir)
