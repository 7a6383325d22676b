"""`ehnas bench train`: trained ground truth for any space and dataset (a table the other benches read)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Adds `train` to the `bench` group."""
    app.command("train")(train)


def table_protocol(table: Path):  # noqa: ANN201 - lazy import of the type
    """The protocol of a table from `ehnas bench train`, its data checked to be reachable from
    here; a usage error naming --table otherwise (the three benches read tables through this)."""
    from nas_lib.bench.train import read_protocol

    try:
        protocol = read_protocol(table)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--table") from None
    path = protocol.data.get("path")
    if path and not Path(path).exists():
        raise typer.BadParameter(
            f"the table's data {path} is not found from {Path.cwd()} (paths in the protocol are "
            "relative to where the table was trained: run from there)",
            param_hint="--table",
        )
    return protocol


def protocol_from_config(config: Path | None, overrides: list[str]):  # noqa: ANN201 - lazy import of the type
    """The pipeline config's space, data, training budget and seed as a `TrainProtocol`: the
    table then means what the pipeline's finalist training means."""
    import yaml

    from nas_lib.bench.train import TrainProtocol
    from nas_lib.space import HybridConstraints
    from tasks.config import load_config

    try:
        cfg = load_config(config, overrides)
    except (ValueError, OSError, yaml.YAMLError) as err:
        raise typer.BadParameter(str(err), param_hint="--config/--set") from None
    if cfg.space.name == "hybrid":
        base = {**cfg.space.constraints, "min_depth": cfg.space.min_depth, "max_depth": cfg.space.max_depth}
        space = {"name": "hybrid", "constraints": HybridConstraints.from_dict(base).to_dict()}
    else:
        space = {"name": cfg.space.name}
    d, t = cfg.data, cfg.training
    data = {"kind": d.kind, "path": d.path, "image_size": d.image_size, "max_items": d.max_items, "val_fraction": d.val_fraction, "seed": cfg.seed}
    return TrainProtocol(
        space=space, data=data, epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, max_batches_per_epoch=t.max_batches_per_epoch, seed=cfg.seed
    )


def train(
    out: Path = typer.Option(..., "--out", dir_okay=False, help="The table (CSV): created with <out>.protocol.json, or resumed."),
    config: Path | None = typer.Option(
        None, "--config", "-c", exists=True, dir_okay=False, help="Pipeline YAML: its space, data, training and seed are the protocol."
    ),
    set_: list[str] = typer.Option([], "--set", "-s", help="Pipeline config override dotted.key=value (repeatable), e.g. data.kind=idx."),  # noqa: B006
    n: int = typer.Option(300, "--n", min=1, help="Architectures in the seeded, depth-stratified sample."),
    sample_seed: int = typer.Option(0, "--sample-seed", help="Seed of the sample (the first k of a sample are the same for any n >= k)."),
    train_seed: int | None = typer.Option(
        None,
        "--train-seed",
        help="Training seed (default: the config's seed). The same sample under another seed, in another --out, gives the table's noise floor.",
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (on CUDA they share the GPU: several architectures per device)."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads per worker."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (refused when the machine lacks it)."),
    patience: int | None = typer.Option(
        None, "--patience", min=1, help="Early-stopping patience in epochs (default: the loop's 2); set it to the epochs for whole learning curves."
    ),
    reference: list[str] = typer.Option(  # noqa: B006
        [], "--reference", help="An architecture a user would train instead of searching (e.g. a plain residual CNN); repeatable; role 'reference'."
    ),
) -> None:
    """Train a seeded, depth-stratified sample of architectures under the pipeline's finalist
    protocol and write one row per architecture as it finishes (arch, arch_id, params, flops,
    per-epoch val accuracy, val_accuracy, test accuracy, seconds, state, error, role). Reruns
    resume. Beside the table, <out>.floor.json holds the 1-nearest-neighbour pixel baseline."""
    from dataclasses import replace

    from ehnas.exit_codes import CliError, ExitCode
    from nas_lib.bench.train import WorkerFailed, build_space, stratified_sample, train_table, write_floor
    from nas_lib.data.datasets import DatasetError
    from nas_lib.train.device import resolve_device

    try:
        device = resolve_device(device)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--device") from None
    protocol = protocol_from_config(config, set_)
    if train_seed is not None:
        protocol = protocol.with_seed(train_seed)
    if patience is not None:
        protocol = replace(protocol, patience=patience)
    if protocol.data["kind"] != "digits" and not protocol.data.get("path"):
        raise typer.BadParameter(f"data.kind={protocol.data['kind']} needs data.path", param_hint="--set")
    if protocol.data.get("path") and not Path(protocol.data["path"]).exists():
        raise typer.BadParameter(f"data.path {protocol.data['path']} does not exist", param_hint="--set")
    space = build_space(protocol.space)
    for arch in reference:
        try:
            space.from_string(arch)
        except ValueError as err:
            raise typer.BadParameter(f"{arch!r}: {err}", param_hint="--reference") from None
    archs = stratified_sample(space, n, sample_seed)
    try:
        write_floor(out, protocol)  # loads the data: a bad dataset is said here, before any worker starts
        rows = train_table(protocol, archs, out, workers=workers, device=device, threads=threads, progress=typer.echo, references=reference)
    except DatasetError as err:
        raise CliError(f"data ({protocol.data['kind']}, {protocol.data.get('path')}): {err}", ExitCode.USAGE) from None
    except WorkerFailed as err:
        raise CliError(str(err), ExitCode.RUN_FAILED) from None
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--out") from None
    ok = sum(r["state"] == "ok" for r in rows)
    typer.echo(f"{out}: {len(rows)} rows ({ok} ok, {len(rows) - ok} failed); protocol in {out.name}.protocol.json")
