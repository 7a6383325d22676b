"""`ehnas`: LLM-guided hybrid CNN/ViT/Mamba neural architecture search.

Each command group lives in its own module under `ehnas/commands/` and registers itself here.
"""

from __future__ import annotations

import os

# Library warnings (`nas_lib.*` loggers) reach the Prefect UI with the run's logs. Prefect reads
# this when it is first imported, so it is set here, before any command imports it.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "nas_lib")

import typer  # noqa: E402

from ehnas.commands import bench, export, knowledge, pipeline, prune, space  # noqa: E402

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
