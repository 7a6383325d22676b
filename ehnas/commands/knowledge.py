"""`ehnas knowledge ...` (placeholder)."""

import typer

app = typer.Typer(help="Build and inspect the knowledge base extracted from research papers.", no_args_is_help=True)
