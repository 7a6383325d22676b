"""Design knowledge for the LLM pruning layers: extraction from PDFs and the embedded base.

- `load_knowledge` returns a `KnowledgeBase` (``.text(max_chars)``, ``.rules``, ``.fingerprint``).
- `add_documents` turns PDFs into ``knowledge.parquet`` + ``tips.md`` with an extractor from
  `EXTRACTORS` (``offline`` or ``openai``).
"""

from nas_lib.knowledge import llm_extractor, offline  # noqa: F401  (register the extractors)
from nas_lib.knowledge.analysis import HEADINGS, PROMPT_VERSION, Analysis, analysis_problems
from nas_lib.knowledge.base import KnowledgeBase, Section, embedded_dir, load_knowledge
from nas_lib.knowledge.build import AddOutcome, add_documents, expand_inputs
from nas_lib.knowledge.extractors import EXTRACTORS, ChunkOutcome, Extractor
from nas_lib.knowledge.pdf import Document, DocumentError, ExtractionLimits, read_document
from nas_lib.knowledge.rules import rules_problems
from nas_lib.knowledge.store import KNOWLEDGE_SCHEMA, read_rows, summarize_documents

__all__ = [
    "EXTRACTORS",
    "HEADINGS",
    "KNOWLEDGE_SCHEMA",
    "PROMPT_VERSION",
    "AddOutcome",
    "Analysis",
    "ChunkOutcome",
    "Document",
    "DocumentError",
    "ExtractionLimits",
    "Extractor",
    "KnowledgeBase",
    "Section",
    "add_documents",
    "analysis_problems",
    "embedded_dir",
    "expand_inputs",
    "load_knowledge",
    "read_document",
    "read_rows",
    "rules_problems",
    "summarize_documents",
]
