"""``groupwire serve`` (the Admin API and the relay) and ``groupwire migrate``.

``serve`` runs the API with uvicorn in this process, together with the in-process relay that
delivers events to the subscribers plugins register. With ``--workers N`` (N > 1) uvicorn
starts N processes, each building its own app from ``GROUPWIRE_*`` variables
(``groupwire.api.asgi:create_app_from_env``); the command sets those variables from its
options first. The command binds the socket itself, before the server runs, and hands it to
uvicorn (its server, or its supervisor of worker processes): what it prints is the address
bound, the port the system chose when asked for port 0. Handing sockets to the supervisor
is the call ``uvicorn.run`` makes itself, in the form uvicorn has had since 0.51.

On a database with no API key at all, ``serve`` creates one with scope ``admin`` and prints
its secret once, so that a first run can be tried with curl at once. A database whose keys
were all revoked gets no new key: that was someone's decision.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from groupwire.cli.common import (
    DbOption,
    database_url,
    display_url,
    err,
    escape,
    fail,
    open_groupwire,
    out,
)
from groupwire.cli.signals import stop_requested

if TYPE_CHECKING:
    import socket

    from sqlalchemy import Engine

PluginOption = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        "-p",
        help="A module to load as a plugin (repeatable), besides GROUPWIRE_PLUGINS "
        "and installed ones.",
        show_default=False,
    ),
]
MedusaCaptureOption = Annotated[
    str | None,
    typer.Option(
        "--medusa-capture",
        help="Also capture a Medusa store's customer changes from its PostgreSQL "
        "(postgresql://...), in a background thread: see docs/medusa.md.",
        show_default=False,
    ),
]
FIRST_KEY_NAME = "admin (created by groupwire serve)"
MEDUSA_PLUGIN = "groupwire.medusa.plugin"  # named, not imported: the adapter stays outside


def with_medusa_capture(medusa_url: str | None, plugins: list[str]) -> list[str]:
    """``--medusa-capture URL``: load the Medusa plugin with capture on (through the
    ``GROUPWIRE_MEDUSA_*`` variables it reads, so that ``--workers`` processes see them)."""
    if not medusa_url:
        return plugins
    os.environ["GROUPWIRE_MEDUSA_URL"] = medusa_url
    os.environ["GROUPWIRE_MEDUSA_CAPTURE"] = "1"
    return plugins if MEDUSA_PLUGIN in plugins else [*plugins, MEDUSA_PLUGIN]


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port (0: any free port, printed).")
    ] = 8000,
    db: DbOption = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    plugin: PluginOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
    medusa_capture: MedusaCaptureOption = None,
) -> None:
    """Serve the Admin API and deliver events to subscribers, until SIGTERM or Ctrl+C."""
    import uvicorn

    url = database_url(ctx, db)
    plugin = with_medusa_capture(medusa_capture, plugin or []) or None
    gw = open_groupwire(url, plugins=plugin or [])
    try:
        sock = bind_server_socket(host, port)
    except OSError as error:
        gw.close()
        fail(f"cannot listen on {http_address(host, port)}: {error.strerror or error}")
    with sock:
        port = sock.getsockname()[1]
        try:
            announce_first_key(gw.engine, host, port)
        except BaseException:
            gw.close()
            raise
        address = http_address(host, port)
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            gw.close()
            os.environ["GROUPWIRE_DATABASE_URL"] = url
            if plugin:
                from groupwire.settings import Settings

                os.environ["GROUPWIRE_PLUGINS"] = ",".join([*Settings().plugins, *plugin])
            config = uvicorn.Config(
                "groupwire.api.asgi:create_app_from_env",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level=log_level,
                timeout_graceful_shutdown=5,
            )
            out().print(
                f"Groupwire Admin API on [bold]{address}[/] with {workers} worker processes "
                f"(database {escape(display_url(url))})",
                soft_wrap=True,
            )
            with stop_requested():
                Multiprocess(config, sockets=[sock]).run()
            return

        from groupwire.api import create_app

        try:
            gw.start()
            config = uvicorn.Config(
                create_app(gw),
                host=host,
                port=port,
                log_level=log_level,
                timeout_graceful_shutdown=5,
            )
            out().print(
                f"Groupwire Admin API on [bold]{address}[/] (database "
                f"{escape(display_url(url))}); delivering events to {len(gw.subscribers)} "
                "subscribers. Stop with Ctrl+C.",
                soft_wrap=True,
            )
            with stop_requested():
                uvicorn.Server(config).run(sockets=[sock])
        finally:
            gw.close()
    err().print("Stopped.")


def bind_server_socket(host: str, port: int) -> socket.socket:
    """The API's TCP socket, bound before the server runs: the address printed is then the
    one bound (with port 0, the port the system chose), and ``--workers`` processes all
    accept on this one socket. Bound, not listening yet: the server listens once the app has
    started, so a client never waits on an app still starting. Bound as uvicorn binds the
    socket of its worker processes: one address (a host name, the first IPv4 one it resolves
    to; an address with ``:``, IPv6)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def http_address(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce_first_key(engine: Engine, host: str, port: int) -> None:
    """Create and print an admin key when the database has never had one."""
    from groupwire.auth.keys import create_key, list_keys

    if list_keys(engine):
        return
    key, secret = create_key(engine, FIRST_KEY_NAME, ["admin"])
    console = out()
    console.print(
        f"[bold yellow]No API key existed, so an admin key was created[/] ({key.id}). "
        "Its secret is shown only this once; store it now:",
        soft_wrap=True,
    )
    console.print(f"    [bold]{secret}[/]", soft_wrap=True)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    console.print(
        f'Try: curl -H "Authorization: Bearer {secret}" '
        f"{http_address(shown_host, port)}/admin/customer-groups",
        soft_wrap=True,
    )
    console.print(
        "Manage keys with: groupwire keys create NAME --scope read|write|admin, "
        "groupwire keys list, groupwire keys revoke ID",
        soft_wrap=True,
    )


def migrate_command(ctx: typer.Context, db: DbOption = None) -> None:
    """Apply every pending schema migration (safe to run at each deploy)."""
    from alembic.runtime.migration import MigrationContext

    from groupwire.store import migrate
    from groupwire.store.engine import create_store_engine

    url = database_url(ctx, db)

    try:
        engine = create_store_engine(url)
    except Exception as error:
        fail(f"cannot open the database at {display_url(url)}: {error}")
    try:
        try:
            migrate.upgrade(engine)
        except Exception as error:
            fail(f"migration failed on {display_url(url)}: {error}")
        with engine.connect() as conn:
            heads = sorted(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
    out().print(
        f"Database {escape(display_url(url))} is up to date (revisions: {', '.join(heads)})",
        soft_wrap=True,
    )
