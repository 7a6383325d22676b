"""Reading text out of a PDF, with every way a file can be unusable turned into a clear reason."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pdfplumber

# pdfminer logs a warning per odd object in damaged files; our error row says it once.
logging.getLogger("pdfminer").setLevel(logging.ERROR)


class DocumentError(Exception):
    """A file that cannot be analysed; ``str(exc)`` is the reason stored in the error column."""


@dataclass(frozen=True)
class ExtractionLimits:
    """Bounds on what one document may cost.

    Attributes:
        max_bytes: larger files are refused before parsing (50 MB holds any normal paper).
        max_pages: longer documents are refused (a paper with appendix rarely passes 60 pages;
            300 leaves room for theses while bounding LLM calls).
        max_chars: extracted text beyond this is refused (about 150 chunks of 4000 characters).
        min_chars: less text than this means an image-only or scanned PDF (no OCR here).
        chunk_chars: target chunk size; 4000 characters is about 1000 tokens.
        chunk_overlap: characters repeated between chunks so a sentence cut in two survives.
        max_seconds: parsing one file longer than this is stopped and the file refused; pdfminer
            can loop for minutes on a crafted or damaged file, so the parse runs in a child
            process that can be killed. 0 parses in this process, without a limit.
    """

    max_bytes: int = 50_000_000
    max_pages: int = 300
    max_chars: int = 600_000
    min_chars: int = 40
    chunk_chars: int = 4000
    chunk_overlap: int = 200
    max_seconds: float = 120.0


@dataclass(frozen=True)
class Document:
    path: Path
    sha256: str
    title: str
    pages: int
    text: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_document(path: Path, limits: ExtractionLimits = ExtractionLimits()) -> Document:
    """Text and metadata of one PDF.

    Raises:
        DocumentError: empty, not a PDF, too large, corrupt, encrypted or without text.
    """
    path = Path(path)
    check_file(path, limits)
    if limits.max_seconds > 0:
        return _read_in_child(path, limits)
    return _read_checked(path, limits)


def _read_checked(path: Path, limits: ExtractionLimits) -> Document:
    try:
        with pdfplumber.open(path) as pdf:
            pages = len(pdf.pages)
            if pages > limits.max_pages:
                raise DocumentError(f"too large: {pages} pages exceeds max_pages={limits.max_pages}")
            texts = page_texts(pdf, limits)
            title = str((pdf.metadata or {}).get("Title") or "").strip()
    except DocumentError:
        raise
    except Exception as exc:  # pdfminer raises many unrelated types for damaged files
        raise DocumentError(describe_pdf_failure(exc, path)) from exc
    text = "\n\n".join(t.strip() for t in texts if t.strip())
    if len(text) > limits.max_chars:
        raise DocumentError(f"too large: {len(text)} characters of text exceeds max_chars={limits.max_chars}")
    if len(text.strip()) < limits.min_chars:
        raise DocumentError(f"no extractable text ({len(text.strip())} characters on {pages} pages): image-only or scanned PDF, OCR is not supported")
    return Document(path=path, sha256=file_sha256(path), title=title or first_line(text) or path.stem, pages=pages, text=text)


def _read_in_child(path: Path, limits: ExtractionLimits) -> Document:
    """`_read_checked` in a child interpreter that is killed after ``limits.max_seconds``.

    The child runs this file as a script: it imports only pdfplumber (~0.2 s to start), not the
    caller's program, and answers one JSON line.
    """
    request = json.dumps({"path": str(path), "limits": asdict(limits)})
    try:
        done = subprocess.run([sys.executable, __file__, request], capture_output=True, text=True, timeout=limits.max_seconds, check=False)
    except subprocess.TimeoutExpired:
        raise DocumentError(f"timed out: parsing took longer than max_seconds={limits.max_seconds:g}") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:  # killed, out of memory, crashed in C code
        tail = done.stderr.strip().splitlines()[-1:] or [""]
        raise DocumentError(f"the parser process died (exit code {done.returncode}) on this file {tail[0][:200]}".rstrip())
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise DocumentError(answer["error"])
    return Document(**{**answer["document"], "path": path})


def _child_main(request: str) -> None:
    """Parses the file named in `request` and prints the outcome as one JSON line."""
    task = json.loads(request)
    try:
        document = _read_checked(Path(task["path"]), ExtractionLimits(**task["limits"]))
        answer: dict[str, Any] = {"document": {**asdict(document), "path": str(document.path)}}
    except DocumentError as exc:
        answer = {"error": str(exc)}
    print(json.dumps(answer))


def page_texts(pdf: pdfplumber.PDF, limits: ExtractionLimits) -> list[str]:
    """Text per page, stopping as soon as the total passes ``max_chars`` (a huge file costs little)."""
    texts, total = [], 0
    for page in pdf.pages:
        texts.append((page.extract_text() or "").strip())
        page.close()  # drop the page's parsed objects: long documents stay within memory
        total += len(texts[-1])
        if total > limits.max_chars:
            raise DocumentError(
                f"too large: more than {limits.max_chars} characters of text (max_chars={limits.max_chars}) within the first {len(texts)} pages"
            )
    return texts


def check_file(path: Path, limits: ExtractionLimits) -> None:
    """Cheap checks before parsing: exists, not empty, PDF header, size."""
    if not path.is_file():
        raise DocumentError("not a file")
    size = path.stat().st_size
    if size == 0:
        raise DocumentError("empty file (0 bytes)")
    if size > limits.max_bytes:
        raise DocumentError(f"too large: {size} bytes exceeds max_bytes={limits.max_bytes}")
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if b"%PDF-" not in head:
        raise DocumentError(f"not a PDF (no %PDF- header; starts with {head[:8]!r})")


def describe_pdf_failure(exc: Exception, path: Path) -> str:
    """A one-line reason; pdfplumber wraps pdfminer's errors, so the whole chain is searched."""
    chain = list(exception_chain(exc))
    names = " ".join(type(e).__name__ for e in chain)
    if "Password" in names or "Encrypt" in names or encrypted_marker(path):
        return "encrypted PDF: a password is required to read its text"
    detail = next((f"{type(e).__name__}: {e}" for e in chain if str(e)), type(exc).__name__)
    return f"corrupt PDF: {detail[:200]}"


def exception_chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        item = todo.pop(0)
        if isinstance(item, BaseException) and item not in out and len(out) < 10:
            out.append(item)
            todo += [*item.args, item.__cause__, item.__context__]
    return out


def encrypted_marker(path: Path) -> bool:
    """True when the trailer declares encryption (looked for in the file's last 64 KB)."""
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 65536))
        return b"/Encrypt" in fh.read()


def first_line(text: str) -> str:
    for line in text.splitlines():
        if len(line.strip()) >= 4:
            return line.strip()[:200]
    return ""


if __name__ == "__main__":  # the child process of `_read_in_child`
    _child_main(sys.argv[1])
