"""Knowledge task: the rules the pruning layers read (``01_knowledge.parquet``).

With ``knowledge.documents`` set, papers are first turned into a knowledge table by the LLM
(retried on transient endpoint faults); otherwise the given table or the embedded base is used.
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
    ("rule_id", pa.string()), ("rule", pa.string()), ("source", pa.string()), ("knowledge_fingerprint", pa.string()),
    ("state", pa.string()), ("note", pa.string()),
])


def knowledge_available() -> bool:
    try:
        import nas_lib.knowledge  # noqa: F401
    except ImportError:
        return False
    return True


def load_run_knowledge(run_dir: str | Path) -> Any:
    """The run's knowledge object (None when the knowledge layer is not installed)."""
    if not knowledge_available():
        return None
    from nas_lib.knowledge import load_knowledge

    extracted = Path(run_dir) / "knowledge" / "knowledge.parquet"
    path = str(extracted) if extracted.exists() else load_config(run_dir).knowledge.path
    return load_knowledge(path)


def _rule_rows(kb: Any, source: str) -> list[dict[str, Any]]:
    rows = []
    for i, rule in enumerate(getattr(kb, "rules", ()) or ()):
        text = rule if isinstance(rule, str) else json.dumps(getattr(rule, "__dict__", None) or str(rule), default=str, sort_keys=True)
        rid = str(getattr(rule, "id", None) or getattr(rule, "rule_id", None) or i)
        rows.append({"rule_id": rid, "rule": text, "source": str(getattr(rule, "source", "") or source),
                     "knowledge_fingerprint": str(getattr(kb, "fingerprint", "")), "state": "ok", "note": None})
    return rows


def build_knowledge_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """Extracts (when documents are configured) and loads the knowledge; one row per rule."""
    cfg = load_config(run_dir)
    if not knowledge_available():
        return [{"rule_id": "none", "rule": "", "source": "", "knowledge_fingerprint": "", "state": "skipped",
                 "note": "knowledge layer (nas_lib.knowledge) not installed: pruning runs without rules"}]
    if cfg.knowledge.documents:
        from nas_lib.knowledge import extract_knowledge
        from nas_lib.llm import LLMSettings

        extract_knowledge([Path(p) for p in cfg.knowledge.documents], Path(run_dir) / "knowledge", LLMSettings.from_env())
    kb = load_run_knowledge(run_dir)
    source = cfg.knowledge.path or ("documents" if cfg.knowledge.documents else "embedded")
    rows = _rule_rows(kb, source)
    if not rows:  # a knowledge base without enumerable rules: keep its text as one row
        rows = [{"rule_id": "text", "rule": kb.text(), "source": source, "knowledge_fingerprint": str(kb.fingerprint), "state": "ok", "note": None}]
    return rows


@task(name="knowledge", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def knowledge_step(run_dir: str) -> str:
    """Writes ``01_knowledge.parquet`` (LLM extraction retried on transient faults)."""
    return str(write_table(step_path(run_dir, "01_knowledge"), build_knowledge_rows(run_dir), KNOWLEDGE_SCHEMA))
