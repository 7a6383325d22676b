"""`ehnas bench pruning`: the pruning layers measured against a benchmark table (NB201)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ehnas.commands.prune import llm_settings, load_knowledge_base


def register(app: typer.Typer) -> None:
    """Adds `pruning` to the `bench` group."""
    app.command("pruning")(pruning)


def pruning(
    space_name: str = typer.Option(
        "nb201",
        "--space",
        help="nb201 or hybrid; measured on --table (for hybrid, a table from `ehnas bench train`: its space is pruned, its architectures are the reference), else by the proxy.",
    ),
    table: Path = typer.Option(
        None, "--table", exists=True, dir_okay=False, help="CSV or Parquet with an arch column and the metric (ground truth for measuring only)."
    ),
    metric: str = typer.Option(
        None,
        "--metric",
        help="Column of the table with the true metric, higher is better (default: cifar10_test_acc for nb201, val_accuracy for hybrid).",
    ),
    provider: str = typer.Option("offline", "--provider", help="offline or openai."),
    proxy: str = typer.Option("params", "--proxy", help="Proxy the offline provider ranks its samples with (never the table)."),
    images: Path = typer.Option(None, "--images", exists=True, dir_okay=False, help="NPZ of images for data-dependent proxies (nwot)."),
    proxy_table: Path = typer.Option(
        None,
        "--proxy-table",
        exists=True,
        dir_okay=False,
        help="Precomputed proxy scores (arch column + a column named like --proxy), e.g. naslib_zc_cifar10_725.csv; the offline provider then ranks those cells.",
    ),
    offline_samples: int = typer.Option(
        400, "--offline-samples", min=10, help="Architectures the offline provider samples and proxy-scores per layer."
    ),
    k: int = typer.Option(2000, "--k", min=20, help="Reference draws when the space is too large to enumerate."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random draw."),
    floor: float = typer.Option(0.8, "--floor", min=0.0, max=1.0, help="Guard: the least top-1% retention a layer may keep."),
    guard_by: str = typer.Option(
        "table", "--guard-by", help="What the guard ranks with: table (the measured truth) or proxy (as in a real run, where no table exists)."
    ),
    out: Path = typer.Option(Path("pruning_bench.json"), "--out", dir_okay=False, help="Result JSON."),
) -> None:
    """Run the three layers and report, per layer, exact size before/after and the share of the
    true top 1% / top 5% that survives (with the table, every NB201 cell is measured)."""
    from nas_lib.artifacts import atomic_write_json
    from nas_lib.pruning import MeasureConfig, run_all_layers, table_score_fn
    from nas_lib.pruning.report import bench_summary, format_table, nb201_reference_cuts
    from nas_lib.pruning.run import reference_for
    from nas_lib.pruning.scoring import PrecomputedScore, proxy_score_fn
    from nas_lib.space import NB201Space, get_space

    batch, reference = None, None
    if space_name == "hybrid" and table is not None:
        from ehnas.commands.bench_train import table_protocol
        from nas_lib.bench import train as trained

        protocol = table_protocol(table)
        space = trained.build_space(protocol.space)
        metric = metric or trained.METRIC
        batch = trained.protocol_batch(protocol) if images is None else None
    else:
        space = get_space(space_name)
        metric = metric or "cifar10_test_acc"
    try:
        proxy_fn = PrecomputedScore(proxy_table, proxy, space) if proxy_table else proxy_score_fn(space, proxy, data=images, seed=seed, batch=batch)
        truth = table_score_fn(table, metric, space) if table is not None else None
        if space_name == "hybrid" and table is not None:
            reference = tuple(space.from_string(a) for a in trained.load_table(table))
    except (KeyError, ValueError) as err:
        raise typer.BadParameter(str(err).strip("'\"")) from None
    if guard_by not in ("table", "proxy"):
        raise typer.BadParameter("expected table or proxy", param_hint="--guard-by")
    measure = MeasureConfig(
        k=k,
        seed=seed,
        retention_floor=floor,
        score_fn=truth if truth is not None else proxy_fn,
        proxy_fn=proxy_fn,
        offline_samples=offline_samples,
        guard_fn=proxy_fn if guard_by == "proxy" else None,
        reference_specs=reference,
    )
    outcomes = run_all_layers(space, load_knowledge_base(None), provider=provider, settings=llm_settings(provider), measure=measure)
    result: dict[str, Any] = {
        "space": space_name,
        "provider": provider,
        "proxy": proxy,
        "proxy_table": str(proxy_table) if proxy_table else None,
        "offline_samples": offline_samples,
        "guard_by": guard_by,
        "measured_by": "table" if truth is not None else f"proxy:{proxy}",
        "table": str(table) if table else None,
        "metric": metric if truth is not None else None,
        "k": k,
        "seed": seed,
        "floor": floor,
        "layers": bench_summary(outcomes),
    }
    if isinstance(space, NB201Space) and truth is not None:
        result["reference_cuts"] = nb201_reference_cuts(reference_for(space, measure), space)
    atomic_write_json(out, result)
    typer.echo(f"{space_name}, provider={provider}, proxy={proxy}, measured by {result['measured_by']}")
    typer.echo(format_table(outcomes))
    for name, cut in result.get("reference_cuts", {}).items():
        typer.echo(f"reference cut {name}: cut {cut['reduction_pct']:.1f}%, top1 {cut['top1pct_retention']:.3f}, top5 {cut['top5pct_retention']:.3f}")
    typer.echo(f"wrote {out}")
