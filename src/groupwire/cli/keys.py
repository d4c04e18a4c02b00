"""``groupwire keys ...``: the API keys that may call the Admin API.

A key's secret is printed once, when the key is created, and is never retrievable again
(only its hash is stored). Scopes: ``read``; ``write`` (also reads); ``admin`` (everything).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated

import typer

from groupwire.cli.common import (
    DbOption,
    JsonOption,
    database_url,
    domain_errors,
    err,
    escape,
    open_engine,
    out,
    print_json_lines,
)

if TYPE_CHECKING:
    from groupwire.auth.keys import ApiKey

app = typer.Typer(help="API keys for the Admin API.", no_args_is_help=True)


class Scope(enum.StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


def key_json(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "scopes": list(key.scopes),
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. 'storefront sync'.")],
    scopes: Annotated[
        list[Scope],
        typer.Option(
            "--scope", "-s", help="read, write or admin (repeatable).", show_default=False
        ),
    ],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Create a key and print its secret (shown this once only)."""
    from groupwire.auth.keys import create_key

    engine = open_engine(database_url(ctx, db))
    try:
        with domain_errors():
            key, secret = create_key(engine, name, [s.value for s in scopes])
    finally:
        engine.dispose()
    if as_json:
        print_json_lines([{**key_json(key), "secret": secret}])
        return
    out().print(
        f"Created API key [bold]{escape(key.name)}[/] {key.id} (scopes: {', '.join(key.scopes)})",
        soft_wrap=True,
    )
    out().print(f"Secret: [bold yellow]{secret}[/]", soft_wrap=True)
    err().print("Store the secret now: it is not shown again.", soft_wrap=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False, db: DbOption = None) -> None:
    """List every key, revoked ones included (secrets are never shown)."""
    from groupwire.auth.keys import list_keys

    engine = open_engine(database_url(ctx, db))
    try:
        keys = list_keys(engine)
    finally:
        engine.dispose()
    if as_json:
        print_json_lines([key_json(k) for k in keys])
        return
    from rich.table import Table

    table = Table(title=f"API keys ({len(keys)})", title_justify="left")
    table.add_column("id", overflow="fold", style="dim")
    table.add_column("name")
    table.add_column("scopes")
    table.add_column("created")
    table.add_column("status")
    for key in keys:
        status = f"[red]revoked {key.revoked_at:%Y-%m-%d %H:%M}[/]" if key.revoked_at else "active"
        table.add_row(
            key.id, key.name, ",".join(key.scopes), f"{key.created_at:%Y-%m-%d %H:%M}", status
        )
    out().print(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (apikey_...).")],
    db: DbOption = None,
) -> None:
    """Revoke a key: its next request is refused (401). Revoking twice changes nothing."""
    from groupwire.auth.keys import revoke_key

    engine = open_engine(database_url(ctx, db))
    try:
        with domain_errors():
            key = revoke_key(engine, key_id)
    finally:
        engine.dispose()
    out().print(f"Revoked API key [bold]{escape(key.name)}[/] {key.id}", soft_wrap=True)
