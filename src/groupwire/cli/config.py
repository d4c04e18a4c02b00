"""``groupwire config``: every setting, its environment variable, default and meaning."""

from __future__ import annotations

import typer

from groupwire.cli import medusa


def configuration_reference() -> str:
    """Groupwire's settings, then those of the adapters the command line knows."""
    from groupwire.settings import reference

    return reference(*medusa.settings_sections())


def show_config() -> None:
    """Print the configuration reference (Markdown; docs/configuration.md is this output)."""
    typer.echo(configuration_reference(), nl=False)
