"""`ehnas bench proxies`: fidelity, reference agreement, cost and failures of training-free proxies."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Adds `proxies` to the `bench` group."""
    app.command("proxies")(proxies)


def proxies(
    space_name: str = typer.Option(
        "nb201",
        "--space",
        help="'nb201' or 'hybrid'; both measure fidelity against --table (for hybrid, a table from `ehnas bench train`; without one, failures and seconds of random architectures only).",
    ),
    table: Path = typer.Option(None, "--table", exists=True, dir_okay=False, help="CSV or Parquet with an 'arch' column and the metric column."),
    metric: str = typer.Option(
        None,
        "--metric",
        help="Column of --table with the true metric, higher is better (default: cifar10_test_acc for nb201, val_accuracy for hybrid).",
    ),
    images: Path = typer.Option(
        None,
        "--images",
        exists=True,
        dir_okay=False,
        help="NPZ with x (uint8 images) and y (labels); a hybrid table's own data (its protocol) is the default there.",
    ),
    reference: Path = typer.Option(
        None,
        "--reference",
        exists=True,
        dir_okay=False,
        help="CSV of reference scores (arch + one column per proxy): score its cells and report agreement.",
    ),
    sample: int = typer.Option(1000, "--sample", min=1, help="Architectures to sample (uniformly, seeded)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the sample, the batch and weight initialisation."),
    batch_size: int = typer.Option(64, "--batch-size", min=2, help="Images in the fixed batch."),
    proxy_names: str = typer.Option("all", "--proxies", help="'all' or comma-separated proxy names."),
    device: str = typer.Option("cpu", "--device", help="'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0 = torch's default)."),
    checkpoint: Path = typer.Option(
        None, "--checkpoint", dir_okay=False, help="Parquet of per-architecture scores: resumed from, rewritten as it goes."
    ),
    shard: str = typer.Option(
        None, "--shard", help="'i/n': score only cells i, i+n, ... of the sample (n processes side by side, each with its own --checkpoint)."
    ),
    merge: list[Path] = typer.Option(
        [], "--merge", exists=True, dir_okay=False, help="Another checkpoint (e.g. a shard's) whose rows are reused, never rewritten; repeatable."
    ),
    build_workers: int = typer.Option(
        0,
        "--build-workers",
        min=0,
        help="Processes that build the coming networks while this one scores (0 = build in turn); same scores, and seconds per cell then leave out the overlapped construction.",
    ),
    max_seconds: float = typer.Option(
        None, "--max-seconds", min=0, help="Stop scoring new architectures after this many seconds; report on those scored (n says how many)."
    ),
    search_budget: int = typer.Option(
        0,
        "--search-budget",
        min=0,
        help="With --table: per seed, rank this many of the scored cells by each proxy and report the true metric of its pick (0 = off).",
    ),
    search_seeds: int = typer.Option(10, "--search-seeds", min=1, help="Seeds of the --search-budget draws."),
    out: Path = typer.Option(Path("result.json"), "--out", dir_okay=False, help="Result JSON."),
) -> None:
    """Score sampled architectures with the chosen proxies and report, per proxy, Spearman and
    Kendall correlation with the table metric, top-10% recall, median seconds per architecture
    and failures; with --reference, the rank agreement with the reference scores."""
    import pandas as pd
    import torch

    from nas_lib.artifacts import atomic_write_json
    from nas_lib.bench import proxies as bench
    from nas_lib.data.arrays import fixed_batch, load_npz_images
    from nas_lib.proxies import PROXIES
    from nas_lib.space import get_space
    from nas_lib.train.device import resolve_device

    if threads:
        torch.set_num_threads(threads)
    try:
        device = resolve_device(device)  # before any scoring: a missing GPU would fail every row
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--device") from None
    try:
        names = bench.resolve_proxies(proxy_names)
    except KeyError as err:
        raise typer.BadParameter(str(err), param_hint="--proxies") from None
    truth = None
    if space_name == "hybrid" and table is not None:
        from ehnas.commands.bench_train import table_protocol
        from nas_lib.bench import train as trained

        protocol = table_protocol(table)
        space = trained.build_space(protocol.space)
        truth = pd.Series(trained.load_table(table)) if metric in (None, trained.METRIC) else bench.load_metric_table(table, metric)
        batch = trained.protocol_batch(protocol, batch_size, seed) if images is None else None
    else:
        space = get_space(space_name)
        batch = None
    if batch is None:
        if images is None:
            raise typer.BadParameter("needed unless --space hybrid --table gives the data", param_hint="--images")
        x, y = load_npz_images(images)
        batch = fixed_batch(x, y, batch_size, seed)
    metric = metric or ("val_accuracy" if space_name == "hybrid" else "cifar10_test_acc")
    result: dict = {
        "space": space_name,
        "metric": metric if table else None,
        "seed": seed,
        "batch_size": batch_size,
        "device": device,
        "torch_threads": torch.get_num_threads(),
    }
    if truth is not None:
        specs = [space.from_string(a) for a in bench.sample_archs(list(truth.index), sample, seed)]
    elif space_name == "hybrid":
        specs = bench.sample_hybrid(space, sample, seed)
    else:
        ref = pd.read_csv(reference) if reference else None
        pool = list(ref["arch"].astype(str)) if ref is not None else list(bench.load_metric_table(table, metric).index) if table else []
        if not pool:
            raise typer.BadParameter("nb201 needs --table (to sample from) or --reference", param_hint="--table")
        specs = [space.from_string(a) for a in bench.sample_archs(pool, sample, seed)]
    try:
        specs = bench.shard(specs, shard)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--shard") from None
    typer.echo(f"scoring {len(specs)} {space_name} architectures with {', '.join(names)} (batch {batch_size}, seed {seed}, {device})")
    frame = bench.score_specs(
        space,
        specs,
        names,
        batch,
        seed,
        device,
        checkpoint=checkpoint,
        progress=typer.echo,
        max_seconds=max_seconds,
        merge=merge,
        build_workers=build_workers,
    )
    result["n"] = int(frame["arch"].nunique())
    result["n_sampled"] = len(specs)
    if shard:
        result["shard"] = shard
    if table is not None:
        truth = truth if truth is not None else bench.load_metric_table(table, metric)
        result["proxies"] = bench.fidelity(frame, truth, names)
        members = [n for n in names if n != "ensemble" and not PROXIES.get(n).population]
        if len(members) > 1:  # weights fitted on one half of the table, reported on the other
            result["fitted_ensemble"] = bench.fit_ensemble(frame, truth, members, seed=seed)
        if search_budget:
            result["search"] = bench.proxy_search(frame, truth, names, search_budget, search_seeds)
    else:
        result["proxies"] = bench.failures(frame, names)
    if reference is not None and space_name != "hybrid":
        result["reference"] = bench.agreement(frame, pd.read_csv(reference), names)
        result["reference_file"] = str(reference)
    atomic_write_json(out, result)
    typer.echo(bench.format_results(result))
    for name, row in result.get("search", {}).items():
        typer.echo(
            f"search {name}: best of {row['budget']} by the proxy, true metric {row['mean']:.3f} +- {row['std']:.3f} over {row['seeds']} seeds"
        )
    typer.echo(f"wrote {out}")
