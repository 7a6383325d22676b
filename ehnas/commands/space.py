"""`ehnas space describe|sample`: inspect the hybrid search space."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import typer
import yaml

from nas_lib.space import HybridConstraints, HybridSpace, get_space
from nas_lib.space.base import SearchSpace
from nas_lib.space.stats import count_flops, count_parameters

app = typer.Typer(help="Describe the search space and sample architectures from it.", no_args_is_help=True)


def load_space(name: str, constraints: Path | None) -> SearchSpace:
    """The named space, narrowed by a YAML/JSON constraints file when one is given."""
    if constraints is None:
        return get_space(name)
    if name != "hybrid":
        raise typer.BadParameter("--constraints applies to the hybrid space only")
    try:
        data = yaml.safe_load(constraints.read_text())
        return HybridSpace(HybridConstraints.from_dict(data.get("constraints", data)))
    except (OSError, yaml.YAMLError, ValueError, TypeError, AttributeError) as err:
        raise typer.BadParameter(f"{constraints}: {err}", param_hint="--constraints") from None


@app.command()
def describe(
    constraints: Path = typer.Option(None, "--constraints", exists=True, dir_okay=False, help="YAML or JSON file of HybridConstraints fields."),
    space: str = typer.Option("hybrid", help="Space name: hybrid or nb201."),
) -> None:
    """Print the space's choices, its exact size and log10 size."""
    s = load_space(space, constraints)
    typer.echo(s.describe())
    typer.echo(f"exact size: {s.size()}")
    typer.echo(f"log10 size: {s.log10_size():.4f}")


@app.command()
def sample(
    n: int = typer.Option(5, "-n", min=1, help="How many architectures."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    constraints: Path = typer.Option(None, "--constraints", exists=True, dir_okay=False, help="YAML or JSON file of HybridConstraints fields."),
    space: str = typer.Option("hybrid", help="Space name: hybrid or nb201."),
    depth: int = typer.Option(None, help="Hybrid only: sample among architectures of this depth."),
    image_size: int = typer.Option(32, help="Input side for params and FLOPs."),
    channels: int = typer.Option(3, help="Input channels for params and FLOPs."),
    num_classes: int = typer.Option(10, help="Classifier outputs."),
) -> None:
    """Print N uniformly sampled architectures with arch_id, code, params and FLOPs."""
    s = load_space(space, constraints)
    rng = np.random.default_rng(seed)
    shape = (channels, image_size, image_size)
    hybrid = s if isinstance(s, HybridSpace) else None
    if depth is not None and hybrid is None:
        raise typer.BadParameter("--depth applies to the hybrid space only", param_hint="--depth")
    for _ in range(n):
        spec = hybrid.sample(rng, depth=depth) if depth is not None and hybrid is not None else s.sample(rng)
        model = s.build_model(spec, shape, num_classes)
        row: dict[str, Any] = {
            "arch_id": s.arch_id(spec),
            "arch": s.to_string(spec),
            "code": list(s.encode(spec)),
            "params": count_parameters(model),
            "flops": count_flops(model, shape),
        }
        if as_json:
            typer.echo(json.dumps(row))
        else:
            code = "".join(str(d) for d in row["code"]).rstrip("0") or "0"
            typer.echo(f"{row['arch_id']}  params={row['params']:,}  flops={row['flops']:,}\n  code {code}\n  {row['arch']}")
