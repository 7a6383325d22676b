"""`ehnas`: LLM-guided hybrid CNN/ViT/Mamba neural architecture search.

Each command group lives in its own module under `ehnas/commands/` and registers itself here.
"""

from __future__ import annotations

import typer

from ehnas.commands import bench, export, knowledge, pipeline, prune, space

app = typer.Typer(
    name="ehnas",
    help="LLM-guided hybrid CNN/ViT/Mamba neural architecture search (Prefect pipeline, MLflow registry).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(space.app, name="space")
app.add_typer(bench.app, name="bench")
app.add_typer(knowledge.app, name="knowledge")
prune.register(app)
pipeline.register(app)
export.register(app)


if __name__ == "__main__":
    app()
