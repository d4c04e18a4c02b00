"""The ``groupwire`` command line (Typer). Sub-commands live in modules of this package and
are added below, one line each."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="groupwire",
    help="Customer groups with first-class events, hooks and webhooks.",
    no_args_is_help=True,
)

# --- sub-commands (one line each) ---


def main() -> None:
    app()
