"""Placeholder: registers no command yet."""

import typer


def register(app: typer.Typer) -> None:
    """Adds this module's commands to `app`."""
