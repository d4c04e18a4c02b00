"""What every command shares: where the database is, how to open it, how to print and fail.

The database URL comes from, in order: the command's own ``--db``, the global ``--db`` given
before the command (``groupwire --db URL groups list``), ``GROUPWIRE_DATABASE_URL``, and the
default embedded SQLite file ``groupwire.db`` in the current directory.

Domain errors (``NotFound``, ``Duplicate``, ``HookRejected``, ...) become one red line on
stderr and exit code 1; bad command-line input exits with 2 (Click's usage error).

Like every module of the command line, this one imports only Typer, the standard library
and the domain at its top: Rich, the store, the service and the servers are imported by the
functions that use them, when a command runs (see :mod:`groupwire.cli`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from groupwire.domain.changes import Context
from groupwire.domain.errors import GroupwireError, NotFound
from groupwire.domain.models import CustomerGroup

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine

    from groupwire.app import Groupwire

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///file.db or postgresql://...). Default: the global --db, "
        "else $GROUPWIRE_DATABASE_URL, else sqlite:///groupwire.db",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON instead, one object per line.")
]


@dataclass
class CliState:
    """What the root command's options leave for the sub-commands (``ctx.obj``)."""

    database_url: str | None = None


def out() -> Console:
    """The console for results (stdout). Built per call so redirections are honoured."""
    from rich.console import Console

    return Console(highlight=False)


def err() -> Console:
    """The console for errors, warnings and progress (stderr)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def escape(text: str) -> str:
    """``text`` with Rich's markup escaped, for printing user data through a console.

    Rich's markup module is imported here, on first use, not at the top: a help needs none
    of Rich.
    """
    from rich.markup import escape as escape_markup

    return escape_markup(text)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as an error and leave with ``code``."""
    err().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn a domain error into a clear message and exit code 1 (never a traceback)."""
    try:
        yield
    except GroupwireError as error:
        fail(f"{error.message} ({error.type})")


def database_url(ctx: typer.Context | None, db: str | None = None) -> str:
    """The URL a command works on: its own ``--db``, else the global one, else the settings."""
    if db:
        return db
    root = ctx.find_root().obj if ctx is not None else None
    if isinstance(root, CliState) and root.database_url:
        return root.database_url
    from groupwire.settings import Settings

    return Settings().database_url


def display_url(url: str) -> str:
    """The URL with its password masked, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def open_groupwire(url: str, **options: Any) -> Groupwire:
    """Open (and migrate) the store at ``url`` with the configured plugins."""
    from groupwire.app import Groupwire

    try:
        return Groupwire.open(url, **options)
    except Exception as error:  # a bad URL, an unreachable server, a missing plugin module
        fail(f"cannot open Groupwire on {display_url(url)}: {error}")


def open_engine(url: str) -> Engine:
    """A migrated engine, for commands that need the store but not the service."""
    from groupwire.settings import Settings
    from groupwire.store import migrate
    from groupwire.store.engine import create_store_engine

    try:
        engine = create_store_engine(url)
        if Settings().auto_migrate:
            migrate.upgrade(engine)
        return engine
    except Exception as error:
        fail(f"cannot open the database at {display_url(url)}: {error}")


def cli_context() -> Context:
    """The actor recorded in events written from the command line: ``cli:<os user>``."""
    import getpass

    from groupwire.domain.ids import new_id

    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (some containers)
        user = "unknown"
    return Context(actor=f"cli:{user}", correlation_id=new_id("cli"))


def parse_metadata(text: str | None) -> dict[str, Any] | None:
    """``--metadata '{"tier": "gold"}'``: a JSON object, or a usage error."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not valid JSON: {error}", param_hint="--metadata") from None
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--metadata")
    return value


def find_group(gw: Groupwire, id_or_name: str) -> CustomerGroup:
    """A live group by id or, failing that, by exact name."""
    try:
        return gw.groups.get(id_or_name)
    except NotFound:
        pass
    page = gw.groups.list(names=[id_or_name], limit=1)
    if page.items:
        return page.items[0]
    raise NotFound("customer_group", id_or_name)


def print_json_lines(rows: Sequence[dict[str, Any]]) -> None:
    """One compact JSON object per line, straight to stdout (no Rich markup or wrapping)."""
    for row in rows:
        typer.echo(json.dumps(row, default=str, ensure_ascii=False))
