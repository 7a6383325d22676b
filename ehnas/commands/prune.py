"""`ehnas prune`: run the three pruning layers on the hybrid space and write their record."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer


def register(app: typer.Typer) -> None:
    """Adds the `prune` command to `app`."""
    app.command("prune")(prune)


def prune(
    provider: str = typer.Option(
        "offline",
        "--provider",
        help="offline (proxy-guided enrichment + knowledge rules) or openai (an LLM; needs EHNAS_LLM_API_KEY or EHNAS_LLM_BASE_URL).",
    ),
    out: Path = typer.Option(Path("pruning_out"), "--out", file_okay=False, help="Folder for pruning.parquet and constraints.json."),
    proxy: str = typer.Option("params", "--proxy", help="Proxy that ranks architectures (measurement and offline decisions)."),
    images: Path = typer.Option(None, "--images", exists=True, dir_okay=False, help="NPZ of images (x, y) for data-dependent proxies such as nwot."),
    k: int = typer.Option(2000, "--k", min=20, help="Architectures drawn from the unpruned space to measure retention."),
    offline_samples: int = typer.Option(
        400, "--offline-samples", min=10, help="Architectures the offline provider samples and proxy-scores per layer."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of every random draw."),
    floor: float = typer.Option(0.8, "--floor", min=0.0, max=1.0, help="Guard: the least top-1% retention a layer may keep."),
    knowledge: Path = typer.Option(None, "--knowledge", exists=True, help="Knowledge base file or folder (default: the embedded one)."),
    llm_timeout: float = typer.Option(None, "--llm-timeout", min=0.001, help="Seconds per LLM request (default: EHNAS_LLM_TIMEOUT_S, else 60)."),
) -> None:
    """Prune the hybrid space layer by layer; print sizes, reduction and top-k retention."""
    from nas_lib.artifacts import atomic_write_json, write_table
    from nas_lib.pruning import PROVIDERS, PRUNING_SCHEMA, MeasureConfig, run_all_layers
    from nas_lib.pruning.report import format_table
    from nas_lib.pruning.scoring import proxy_score_fn
    from nas_lib.space import HybridSpace

    if provider not in PROVIDERS:
        raise typer.BadParameter(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS.names())}", param_hint="--provider")
    space = HybridSpace()
    try:
        score = proxy_score_fn(space, proxy, data=images, seed=seed)
    except (KeyError, ValueError) as err:
        raise typer.BadParameter(str(err).strip("'\""), param_hint="--proxy") from None
    outcomes = run_all_layers(
        space,
        load_knowledge_base(knowledge),
        provider=provider,
        settings=llm_settings(provider, llm_timeout),
        measure=MeasureConfig(k=k, seed=seed, retention_floor=floor, score_fn=score, offline_samples=offline_samples),
    )
    write_table(out / "pruning.parquet", [o.record for o in outcomes], PRUNING_SCHEMA)
    narrowed = cast(HybridSpace, outcomes[-1].space)  # the layers narrow the hybrid space into a hybrid space
    atomic_write_json(out / "constraints.json", narrowed.constraints.to_dict())
    typer.echo(f"hybrid space, provider={provider}, proxy={proxy}, k={k}, floor={floor}")
    typer.echo(format_table(outcomes))
    typer.echo(f"wrote {out / 'pruning.parquet'} and {out / 'constraints.json'}")
    fallbacks = [o for o in outcomes if o.record.get("fallback")]
    for o in fallbacks if provider == "openai" else []:
        typer.echo(f"{o.layer}: no LLM cut ({o.record['fallback_reason']}); every request is in llm_attempts_json", err=True)


def llm_settings(provider: str, timeout_s: float | None = None):  # noqa: ANN201  (LLMSettings | None; imported lazily)
    """LLM settings from the environment (and ``--llm-timeout``) for the openai provider, else None."""
    if provider != "openai":
        return None
    from nas_lib.llm import LLMSettings

    try:
        settings = LLMSettings.from_env(timeout_s=timeout_s)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="EHNAS_LLM_*") from None
    if not settings.configured:
        typer.echo("warning: no LLM configured; every layer will fall back to no cut (flagged)", err=True)
    return settings


def load_knowledge_base(path: Path | None):  # noqa: ANN201  (KnowledgeBase)
    """The knowledge base at `path`, the embedded one by default."""
    from nas_lib.knowledge import load_knowledge

    return load_knowledge(path)
