"""Splitting a paper's text into overlapping chunks on paragraph and sentence boundaries."""

from __future__ import annotations

import re


def chunk_text(text: str, max_chars: int = 4000, overlap: int = 200) -> list[str]:
    """Chunks of at most ``max_chars`` characters, each starting with the previous one's tail.

    Paragraphs are kept whole when they fit; a longer paragraph is split at sentence ends,
    and a sentence longer than a chunk is split hard.
    """
    if max_chars <= overlap + 2:
        raise ValueError(f"max_chars ({max_chars}) must exceed overlap ({overlap})")
    pieces = [p for para in re.split(r"\n\s*\n", text) for p in split_long(para.strip(), max_chars - overlap - 2) if p]
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 2 + len(piece) > max_chars:
            chunks.append(current)
            current = tail(current, overlap)
        current = f"{current}\n\n{piece}" if current else piece
    if current.strip():
        chunks.append(current)
    return chunks


def split_long(paragraph: str, limit: int) -> list[str]:
    if len(paragraph) <= limit:
        return [paragraph]
    out: list[str] = []
    current = ""
    for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
        while len(sentence) > limit:
            out.append(sentence[:limit])
            sentence = sentence[limit:]
        if current and len(current) + 1 + len(sentence) > limit:
            out.append(current)
            current = ""
        current = f"{current} {sentence}" if current else sentence
    if current:
        out.append(current)
    return out


def tail(text: str, overlap: int) -> str:
    """The last ``overlap`` characters, starting at a word boundary."""
    if overlap <= 0:
        return ""
    cut = text[-overlap:]
    space = cut.find(" ")
    return cut[space + 1 :] if 0 <= space < len(cut) - 1 else cut
