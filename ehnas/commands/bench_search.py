"""`ehnas bench search`: search strategies against a tabular benchmark (NB201 by default)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nas_lib.artifacts import atomic_write_json

if TYPE_CHECKING:  # the benchmark module is imported lazily so `ehnas --help` stays fast
    from nas_lib.bench.search import ProxyFitness
    from nas_lib.space.base import SearchSpace


def register(app: typer.Typer) -> None:
    """Adds `search` to the `bench` group."""
    app.command("search")(search)


def search(
    table: Path = typer.Option(
        ...,
        "--table",
        exists=True,
        dir_okay=False,
        help="CSV or Parquet with an arch column and a metric column (for --space hybrid, a table from `ehnas bench train`).",
    ),
    metric: str = typer.Option(
        None, "--metric", help="Column with the true metric, higher is better (default: cifar10_test_acc for nb201, val_accuracy for hybrid)."
    ),
    space_name: str = typer.Option(
        "nb201",
        "--space",
        help="nb201 (the cells of the table) or hybrid (the trained sample of `ehnas bench train`: every move snaps to a trained architecture).",
    ),
    strategies: str = typer.Option(
        "all",
        "--strategies",
        help="'all' (the ask/tell strategies) or comma-separated names; the one-shot darts2, drnas (NB201), darts, spos and enas (NB201 or hybrid) train a supernet on images first.",
    ),
    budget: int = typer.Option(100, "--budget", min=1, help="Queries per search."),
    seeds: int = typer.Option(20, "--seeds", min=1, help="Searches per strategy (seeds 0..N-1)."),
    fitness: str = typer.Option("table", "--fitness", help="'table' (strategies see the metric) or 'proxy:<name>' (they see only the proxy score)."),
    images: Path = typer.Option(None, "--images", exists=True, dir_okay=False, help="NPZ of images (x, y) for data-dependent proxies."),
    batch_images: int = typer.Option(64, "--proxy-batch", min=1, help="Images in the proxy's fixed batch."),
    cache: Path = typer.Option(None, "--cache", dir_okay=False, help="JSON file caching proxy scores across runs."),
    options: str = typer.Option("", "--options", help='JSON of per-strategy options, e.g. {"rea": {"population": 20}}.'),
    out: Path = typer.Option(Path("search_bench.json"), "--out", dir_okay=False, help="Result JSON (the PNG of the curves goes beside it)."),
) -> None:
    """Run every chosen strategy for BUDGET queries and SEEDS seeds; report the true metric of
    each strategy's answer (mean, std, regret vs the table optimum, ms per query)."""
    from nas_lib.bench.search import ProxyFitness, benchmark, format_results, load_table, nb201_space_for, plot_curves
    from nas_lib.search import strategy_class

    batch = None
    space: SearchSpace
    if space_name == "hybrid":
        from ehnas.commands.bench_train import table_protocol
        from nas_lib.bench import train as trained
        from nas_lib.space.sampled import SampledSpace

        protocol = table_protocol(table)
        truth = trained.load_table(table) if metric in (None, trained.METRIC) else load_table(table, metric)
        space = SampledSpace(trained.build_space(protocol.space), list(truth))
        if images is None and fitness != "table":
            batch = trained.protocol_batch(protocol, batch_images)
    elif space_name == "nb201":
        truth = load_table(table, metric or "cifar10_test_acc")
        space = nb201_space_for(list(truth))
    else:
        raise typer.BadParameter("expected nb201 or hybrid", param_hint="--space")
    names = ["all"] if strategies == "all" else [s.strip() for s in strategies.split(",") if s.strip()]
    for name in names:
        if name != "all":
            try:
                strategy_class(name)
            except KeyError as err:
                raise typer.BadParameter(str(err.args[0]), param_hint="--strategies") from None
    seen_fitness = _fitness(fitness, space, images, batch_images, cache, batch)
    try:
        per_strategy = json.loads(options) if options else {}
    except json.JSONDecodeError as err:
        raise typer.BadParameter(f"not JSON: {err}", param_hint="--options") from None
    typer.echo(f"{table.name}: {len(truth)} architectures, space {space.size()}; fitness={fitness}; budget {budget}; {seeds} seeds")
    result = benchmark(truth, names, budget, seeds, fitness=seen_fitness, space=space, options=per_strategy, progress=typer.echo)
    if isinstance(seen_fitness, ProxyFitness):
        seen_fitness.flush()
        result["proxy_cells_scored"] = len(seen_fitness.scores)
        result["proxy_seconds"] = seen_fitness.seconds
        result["proxy_errors"] = seen_fitness.errors
    result.update({"table": str(table), "space": space_name, "metric": metric, "fitness": fitness})
    atomic_write_json(out, result)
    png = plot_curves(result, out.with_suffix(".png"), title=f"{table.name} fitness={fitness} budget={budget} seeds={seeds}")
    typer.echo(format_results(result))
    typer.echo(f"wrote {out} and {png}")


def _fitness(spec: str, space: SearchSpace, images: Path | None, batch_images: int, cache: Path | None, batch: object = None) -> ProxyFitness | None:
    """None for the table itself, else a cached `ProxyFitness` (on `batch` when given)."""
    if spec == "table":
        return None
    kind, _, proxy = spec.partition(":")
    if kind != "proxy" or not proxy:
        raise typer.BadParameter("expected 'table' or 'proxy:<name>'", param_hint="--fitness")
    from nas_lib.bench.search import ProxyFitness

    if images is not None:
        from nas_lib.data.arrays import fixed_batch, load_npz_images

        x, y = load_npz_images(images)
        batch = fixed_batch(x, y, batch_images, 0)
    try:
        return ProxyFitness(space, proxy, batch=batch, seed=0, cache_path=cache)
    except (ImportError, KeyError) as err:
        raise typer.BadParameter(str(err), param_hint="--fitness") from None
