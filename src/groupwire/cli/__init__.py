"""The ``groupwire`` command line (Typer). Sub-commands live in modules of this package and
are added below, one line each.

Heavy imports inside commands: a module of this package imports only Typer, the standard
library and light Groupwire modules (the domain, ``groupwire.cli.common``) at its top; Rich
(consoles, tables, progress bars: ``common.out()``, ``common.err()`` and ``common.escape()``
import it on first use), pluggy, the store, the service, the API, the adapters and their
libraries (SQLAlchemy, FastAPI, psycopg, redis, httpx...) are imported inside the function
that uses them (types for annotations only under ``TYPE_CHECKING``). So ``groupwire --help``
or a command's ``--help`` starts in the time of Typer itself; ``tests/cli/test_cli_startup.py``
holds this, and ``benchmarks/cli_startup.py`` measures it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from groupwire.cli import (
    audit,
    config,
    customers,
    demo,
    events,
    groups,
    keys,
    mail,
    medusa,
    server,
    stats,
    webhooks,
    worker,
)
from groupwire.cli.common import CliState

app = typer.Typer(
    name="groupwire",
    help="Customer groups with first-class events, hooks and webhooks.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="GROUPWIRE_DATABASE_URL",
            help="Database URL for every command (sqlite:///file.db or postgresql://...). "
            "Default: sqlite:///groupwire.db",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Customer groups with first-class events, hooks and webhooks."""
    ctx.obj = CliState(database_url=db)


# --- sub-commands (one line each) ---
app.command("serve")(server.serve)
app.command("worker")(worker.worker)
app.command("migrate")(server.migrate_command)
app.add_typer(keys.app, name="keys")
app.add_typer(groups.app, name="groups")
app.add_typer(customers.app, name="customers")
app.add_typer(events.app, name="events")
app.add_typer(webhooks.app, name="webhooks")
app.command("demo")(demo.demo)
app.command("config")(config.show_config)
app.add_typer(mail.app, name="mail")
app.add_typer(stats.app, name="stats")
app.add_typer(audit.app, name="audit")
app.add_typer(medusa.app, name="medusa")


def main() -> None:
    app(prog_name="groupwire")
