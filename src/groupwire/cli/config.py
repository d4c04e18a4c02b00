"""``groupwire config``: every setting, its environment variable, default and meaning."""

from __future__ import annotations

import typer

from groupwire.settings import reference


def show_config() -> None:
    """Print the configuration reference (Markdown; docs/configuration.md is this output)."""
    typer.echo(reference(), nl=False)
