"""`ehnas knowledge add|list|show`: build and inspect the knowledge base extracted from papers.

`add` exits with `ExitCode.DATA` when a path is missing or unreadable, when no PDF is found, or
when every document failed; a bad option is a usage error (2).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from ehnas.exit_codes import CliError, ExitCode
from nas_lib.knowledge import EXTRACTORS, ExtractionLimits, Extractor, add_documents, read_rows, summarize_documents
from nas_lib.knowledge.analysis import Analysis
from nas_lib.knowledge.store import SYNTHESIS_ID, render_analysis
from nas_lib.llm import LLMSettings

app = typer.Typer(help="Build and inspect the knowledge base extracted from research papers.", no_args_is_help=True)

DEFAULT_OUT = Path("runs/knowledge")
OUT_OPTION = typer.Option(DEFAULT_OUT, "--out", help="Folder holding knowledge.parquet and tips.md.")


def make_extractor(provider: str, model: str | None, base_url: str | None, timeout_s: float | None = None) -> Extractor:
    """The chosen extractor; ``auto`` means openai when an LLM is configured, else offline."""
    try:
        settings = LLMSettings.from_env(model=model, base_url=base_url, timeout_s=timeout_s)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="EHNAS_LLM_*") from None
    if provider == "auto":
        provider = "openai" if settings.configured else "offline"
    return EXTRACTORS.get(provider).from_settings(settings)


@app.command()
def add(
    paths: list[Path] = typer.Argument(..., help="PDF files and/or folders (searched recursively for *.pdf)."),
    out: Path = OUT_OPTION,
    provider: str = typer.Option("auto", help="openai (any OpenAI-compatible server), offline (no LLM) or auto."),
    model: str = typer.Option(None, help="Model name (default: EHNAS_LLM_MODEL / OPENAI_MODEL)."),
    base_url: str = typer.Option(None, help="Chat-completions base URL (default: EHNAS_LLM_BASE_URL / OPENAI_BASE_URL)."),
    llm_timeout: float = typer.Option(None, "--llm-timeout", min=0.001, help="Seconds per LLM request (default: EHNAS_LLM_TIMEOUT_S, else 60)."),
    max_pages: int = typer.Option(ExtractionLimits.max_pages, min=1, help="Refuse PDFs with more pages."),
    max_chars: int = typer.Option(ExtractionLimits.max_chars, min=1, help="Refuse PDFs with more extracted characters."),
    chunk_chars: int = typer.Option(ExtractionLimits.chunk_chars, min=500, help="Characters per chunk sent to the analyser."),
    max_seconds: float = typer.Option(ExtractionLimits.max_seconds, min=0, help="Stop parsing a PDF after this many seconds (0: no limit)."),
) -> None:
    """Analyse new papers (a file already analysed, by sha256, is skipped)."""
    if provider not in {"auto", *EXTRACTORS.names()}:
        raise typer.BadParameter(f"unknown provider {provider!r}; choose auto, {', '.join(EXTRACTORS.names())}", param_hint="--provider")
    check_inputs(paths)
    limits = ExtractionLimits(max_pages=max_pages, max_chars=max_chars, chunk_chars=chunk_chars, max_seconds=max_seconds)
    extractor = make_extractor(provider, model, base_url, llm_timeout)
    outcomes = add_documents(paths, out, extractor, limits)
    if not outcomes:
        raise CliError(f"no PDF files under {', '.join(map(str, paths))}", ExitCode.DATA)
    for o in outcomes:
        detail = (
            f"{o.chunks} chunks" + (f", {o.fallbacks} offline fallbacks" if o.fallbacks else "")
            if o.status == "added"
            else (o.error or "already analysed")
        )
        typer.echo(f"{o.status:8s} {o.path}: {detail}")
    usage = getattr(extractor, "usage", None)
    if usage is not None:
        typer.echo(f"LLM usage: {usage.calls} calls, {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens")
    typer.echo(f"wrote {out / 'knowledge.parquet'} and {out / 'tips.md'}")
    if all(o.status == "failed" for o in outcomes):
        raise CliError(f"every document failed ({len(outcomes)}); see the lines above", ExitCode.DATA)


def check_inputs(paths: list[Path]) -> None:
    """Every given path exists and is readable (said before any paper is analysed)."""
    missing = [str(p) for p in paths if not p.exists()]
    unreadable = [str(p) for p in paths if p.exists() and not os.access(p, os.R_OK)]
    if missing or unreadable:
        parts = ([f"not found: {', '.join(missing)}"] if missing else []) + ([f"not readable: {', '.join(unreadable)}"] if unreadable else [])
        raise CliError("; ".join(parts), ExitCode.DATA)


@app.command("list")
def list_documents(out: Path = OUT_OPTION, as_json: bool = typer.Option(False, "--json", help="One JSON object per line.")) -> None:
    """List analysed documents with their state and chunk counts."""
    docs = summarize_documents(read_rows(out))
    if not docs:
        typer.echo(f"no documents in {out}")
        return
    for doc in docs:
        if as_json:
            typer.echo(json.dumps({k: (int(v) if k == "pages" else v) for k, v in doc.items()}, default=str))
        else:
            extra = f"  ({doc['error']})" if doc["error"] else ""
            typer.echo(
                f"{doc['doc_sha256'][:12] or '-':12s}  {doc['state']:8s}  {doc['pages']:>4} p  {doc['chunks']:>3} chunks  {doc['title']}{extra}"
            )


@app.command()
def show(
    doc: str = typer.Argument(..., help="sha256 prefix, path, file name or part of the title."),
    out: Path = OUT_OPTION,
    chunks: bool = typer.Option(False, "--chunks", help="Also print every chunk's analysis."),
) -> None:
    """Print one document's synthesis (five headings and tips)."""
    frame = read_rows(out)
    match = frame[frame.apply(lambda r: matches(r, doc), axis=1)] if len(frame) else frame
    shas = list(dict.fromkeys(zip(match["doc_sha256"], match["path"], strict=True)))
    if len(shas) != 1:
        typer.echo(f"{len(shas)} documents match {doc!r}" + ("" if not shas else ": " + ", ".join(p for _, p in shas)), err=True)
        raise typer.Exit(1)
    sha, path = shas[0]
    rows = frame[(frame["doc_sha256"] == sha) & (frame["path"] == path)].sort_values("chunk_id")
    head = rows[rows["chunk_id"] == SYNTHESIS_ID].iloc[0]
    typer.echo(f"# {head['title']}\n\n{path} · sha256 {sha} · {head['pages']} pages · state {head['state']} · model {head['model']}\n")
    if head["state"] == "failed":
        typer.echo(f"error: {head['error']}")
        return
    typer.echo(render_analysis(Analysis.model_validate_json(head["analysis_json"]), level=2))
    for _, row in rows[rows["chunk_id"] >= 0].iterrows() if chunks else []:
        typer.echo(f"\n## Chunk {row['chunk_id']} ({row['state']}, {row['model']})\n")
        typer.echo(render_analysis(Analysis.model_validate_json(row["analysis_json"]), level=3))


def matches(row, query: str) -> bool:  # noqa: ANN001 (a pandas row)
    q = query.lower()
    return bool(q) and (
        str(row["doc_sha256"]).startswith(q)
        or str(row["path"]) == query
        or q in Path(str(row["path"])).name.lower()
        or q in str(row["title"]).lower()
    )
