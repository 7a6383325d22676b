"""Offline extractor: fills the five headings from keywords and headings, no LLM needed.

Each sentence goes to the heading whose keywords it matches best; a line that names a heading
(as our sample papers and many real ones do) sends the following sentences there. Tips are
sentences phrased as recommendations. Crude, deterministic and free, so
``ehnas knowledge add`` works without a key; rows it writes carry ``model="offline"``.
"""

from __future__ import annotations

import re

from nas_lib.knowledge.analysis import HEADINGS, MAX_FIELD_CHARS, MAX_TIP_CHARS, MAX_TIPS, Analysis
from nas_lib.knowledge.extractors import EXTRACTORS, ChunkOutcome, Extractor

OFFLINE_MODEL = "offline"

KEYWORDS: dict[str, tuple[str, ...]] = {
    "architectural_overview": ("architecture", "stage", "backbone", "network", "macro", "resolution", "depth", "we propose", "overview", "layout"),
    "cnn_module": (
        "convolution",
        "conv",
        "cnn",
        "kernel",
        "depthwise",
        "resnet",
        "resnext",
        "bottleneck",
        "grouped",
        "cardinality",
        "mbconv",
        "inverted residual",
    ),
    "transformer_module": ("attention", "transformer", "vit", "head", "token", "window", "self-attention", "mlp ratio", "qkv", "patch"),
    "mamba_module": ("mamba", "ssm", "state space", "state-space", "selective scan", "d_state", "s4", "recurrent scan"),
    "hybridization_strategy": (
        "hybrid",
        "combine",
        "interleav",
        "followed by",
        "before",
        "after",
        "early",
        "late",
        "interface",
        "transition",
        "stack",
        "mix",
    ),
    "design_rationale": (
        "because",
        "since",
        "inductive bias",
        "so that",
        "therefore",
        "efficien",
        "generaliz",
        "overfit",
        "data",
        "cost",
        "accuracy",
        "trade-off",
    ),
}
HEADING_PATTERNS: dict[str, re.Pattern[str]] = {
    "architectural_overview": re.compile(r"^\W*(\d+[.)]?\s*)?(architectural\s+)?overview\b", re.I),
    "cnn_module": re.compile(r"^\W*(\d+[.)]?\s*)?(cnn|convolution(al)?)\s+(module|blocks?|part)\b", re.I),
    "transformer_module": re.compile(r"^\W*(\d+[.)]?\s*)?(transformer|attention|vit)\s+(module|blocks?|part)\b", re.I),
    "mamba_module": re.compile(r"^\W*(\d+[.)]?\s*)?(mamba|ssm|state[- ]space)\s*(/\s*ssm\s*)?(module|blocks?|part)\b", re.I),
    "hybridization_strategy": re.compile(r"^\W*(\d+[.)]?\s*)?hybridi[sz]ation", re.I),
    "design_rationale": re.compile(r"^\W*(\d+[.)]?\s*)?(design\s+)?rationale\b", re.I),
}
TIP_PATTERN = re.compile(
    r"\b(should|prefer(red|s)?|avoid|recommend(ed)?|works? best|we suggest|do not|don't|better (to|than))\b"
    r"|^(use|keep|avoid|place|put|restrict|limit|start|end)\b",
    re.I,
)


@EXTRACTORS.register("offline")
class OfflineExtractor(Extractor):
    """Heuristic extractor (no network)."""

    def analyze_chunk(self, title: str, chunk_id: int, n_chunks: int, text: str) -> ChunkOutcome:
        return ChunkOutcome(analyze_offline(text, title), OFFLINE_MODEL)

    def synthesize(self, title: str, analyses: list[Analysis]) -> ChunkOutcome:
        return ChunkOutcome(merge_analyses(analyses), OFFLINE_MODEL)


def analyze_offline(text: str, title: str = "") -> Analysis:
    """Five headings and tips from keyword and heading matches in ``text`` (title lines dropped)."""
    buckets: dict[str, list[str]] = {name: [] for name in HEADINGS}
    tips: list[str] = []
    for section, block in sections_of(text, title):
        # PDF text breaks lines mid-sentence, so sentences are cut from the joined block.
        for sentence in sentences(" ".join(block)):
            buckets[section or best_heading(sentence)].append(sentence)
            if TIP_PATTERN.search(sentence) and len(sentence) <= MAX_TIP_CHARS:
                tips.append(sentence)
    fields = {name: clip(" ".join(dedupe(b)), MAX_FIELD_CHARS) for name, b in buckets.items()}
    return Analysis(**fields, tips=dedupe(tips)[:MAX_TIPS])


def sections_of(text: str, title: str = "") -> list[tuple[str | None, list[str]]]:
    """(heading or None, lines) runs; a short line naming a heading starts a new run."""
    runs: list[tuple[str | None, list[str]]] = [(None, [])]
    title_words = title.split()
    for line in text.splitlines():
        if title_words and line.split() and " ".join(line.split()) in " ".join(title_words):
            continue  # the paper's title (possibly wrapped over lines) says nothing per heading
        heading = next((name for name, pat in HEADING_PATTERNS.items() if len(line) < 80 and pat.match(line)), None)
        if heading:
            runs.append((heading, []))
        elif line.strip():
            runs[-1][1].append(line.strip())
    return [run for run in runs if run[1]]


def merge_analyses(analyses: list[Analysis]) -> Analysis:
    """Synthesis without an LLM: per heading the distinct sentences of all chunks, clipped."""
    fields = {}
    for name in HEADINGS:
        parts = [s for a in analyses for s in sentences(getattr(a, name))]
        fields[name] = clip(" ".join(dedupe(parts)), MAX_FIELD_CHARS)
    tips = dedupe([t for a in analyses for t in a.tips])[:MAX_TIPS]
    return Analysis(**fields, tips=tips)


def best_heading(sentence: str) -> str:
    lowered = sentence.lower()
    scores = {name: sum(lowered.count(k) for k in words) for name, words in KEYWORDS.items()}
    # Family modules first on ties: "conv before attention" is more specific than "architecture".
    order = ("mamba_module", "transformer_module", "cnn_module", "hybridization_strategy", "design_rationale", "architectural_overview")
    best = max(order, key=lambda name: scores[name])
    return best if scores[best] > 0 else "architectural_overview"


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) >= 12]


def dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = re.sub(r"\W+", " ", item.lower()).strip()
        if key and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a sentence end when one is near."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = cut.rfind(". ")
    return cut[: end + 1] if end > limit // 2 else cut[: limit - 1].rstrip() + "…"
