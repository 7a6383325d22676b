"""Knowledge task: the rules the pruning layers read (``01_knowledge.parquet``).

With ``knowledge.documents`` set, papers are first turned into a knowledge table (by the LLM when
one is configured, retried on transient endpoint faults, else offline); otherwise the given
table or the embedded base is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from nas_lib.artifacts import write_table
from tasks.context import load_config, step_path
from tasks.retry import retry_transient

KNOWLEDGE_SCHEMA = pa.schema([
    ("item_id", pa.string()), ("kind", pa.string()), ("title", pa.string()), ("text", pa.string()), ("chars", pa.int64()),
    ("origin", pa.string()), ("knowledge_fingerprint", pa.string()), ("state", pa.string()), ("note", pa.string()),
])


def knowledge_source(run_dir: str | Path) -> Path | None:
    """Where the run's knowledge comes from: extracted documents, a configured path, or None (embedded)."""
    extracted = Path(run_dir) / "knowledge"
    if (extracted / "knowledge.parquet").exists():
        return extracted
    path = load_config(run_dir).knowledge.path
    return Path(path) if path else None


def load_run_knowledge(run_dir: str | Path) -> Any:
    """The run's `KnowledgeBase` (the LLM, when configured, summarises over-long text)."""
    from nas_lib.knowledge import load_knowledge
    from nas_lib.llm import LLMSettings

    settings = LLMSettings.from_env()
    return load_knowledge(knowledge_source(run_dir), llm=settings if settings.configured else None)


def extract_documents(run_dir: str | Path) -> None:
    """Turns the configured papers into ``<run>/knowledge/knowledge.parquet`` (LLM when configured)."""
    from nas_lib.knowledge import EXTRACTORS, add_documents, expand_inputs
    from nas_lib.llm import LLMSettings

    settings = LLMSettings.from_env()
    extractor = EXTRACTORS.get("openai")(settings=settings) if settings.configured else EXTRACTORS.get("offline")()
    add_documents(expand_inputs([Path(p) for p in load_config(run_dir).knowledge.documents]), Path(run_dir) / "knowledge", extractor)


def build_knowledge_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """Extracts (when documents are configured) and loads the knowledge: one row per section plus the rules."""
    if load_config(run_dir).knowledge.documents:
        extract_documents(run_dir)
    kb = load_run_knowledge(run_dir)
    common = {"origin": kb.origin, "knowledge_fingerprint": kb.fingerprint, "state": "ok", "note": None}
    rows = [{"item_id": f"section-{i}", "kind": "section", "title": s.title, "text": s.body, "chars": len(s.body), **common}
            for i, s in enumerate(kb.sections)]
    rules = json.dumps(kb.rules, sort_keys=True, default=str)
    return rows + [{"item_id": "rules", "kind": "rules", "title": "structured rules", "text": rules, "chars": len(rules), **common}]


@task(name="knowledge", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def knowledge_step(run_dir: str) -> str:
    """Writes ``01_knowledge.parquet`` (LLM extraction retried on transient faults)."""
    return str(write_table(step_path(run_dir, "01_knowledge"), build_knowledge_rows(run_dir), KNOWLEDGE_SCHEMA))
