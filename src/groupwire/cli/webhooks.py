"""``groupwire webhooks ...``: webhook endpoints, their delivery log, resends and replays.

The secret of an endpoint is printed once, by ``create`` and ``rotate-secret``. ``resend``
and ``replay`` queue messages; the running server or worker (``gw.start()``) sends them.
``prune`` deletes the finished messages the retention period has passed, as the running
dispatcher does every ``webhooks_prune_interval`` seconds.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from groupwire.cli.common import (
    DbOption,
    JsonOption,
    database_url,
    domain_errors,
    err,
    escape,
    open_groupwire,
    out,
    print_json_lines,
)

if TYPE_CHECKING:
    from groupwire.app import Groupwire
    from groupwire.webhooks import Webhooks
    from groupwire.webhooks.models import WebhookEndpoint

app = typer.Typer(help="Signed webhooks: endpoints and their delivery log.", no_args_is_help=True)

IdArg = Annotated[str, typer.Argument(metavar="ID", help="The endpoint's id (wh_...).")]
EventTypeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--event-type",
        "-e",
        help="Event type or pattern (customer_group.*, customer.created, *); repeatable.",
        show_default=False,
    ),
]
GroupOption = Annotated[
    list[str] | None,
    typer.Option(
        "--group", "-g", help="Only events about this group id (repeatable).", show_default=False
    ),
]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=1000, help="Rows to show.")]


class Status(enum.StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


@contextmanager
def _webhooks(ctx: typer.Context, db: str | None) -> Iterator[Webhooks]:
    from groupwire.webhooks import webhooks_of

    gw: Groupwire = open_groupwire(database_url(ctx, db))
    try:
        with domain_errors():
            yield webhooks_of(gw)
    finally:
        gw.close()


def _plain(entity: Any) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in entity.as_dict().items()
    }


def _time(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def _show_endpoint(endpoint: WebhookEndpoint, verb: str) -> None:
    state = "enabled" if endpoint.enabled else "[red]disabled[/]"
    out().print(
        f"{verb} webhook {endpoint.id} -> {escape(endpoint.url)} ({state}; "
        f"events: {', '.join(endpoint.event_types)})",
        soft_wrap=True,
    )
    if endpoint.secret:
        out().print(f"Secret: [bold yellow]{endpoint.secret}[/]", soft_wrap=True)
        err().print("Store the secret now: it is not shown again.", soft_wrap=True)


@app.command("create")
def create(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="https URL the events are POSTed to.")],
    event_types: EventTypeOption = None,
    groups: GroupOption = None,
    description: Annotated[str | None, typer.Option(help="What the endpoint is for.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    ordered: Annotated[
        bool, typer.Option("--ordered", help="Deliver each group's events in order.")
    ] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Create an endpoint and print its secret (shown this once only)."""
    with _webhooks(ctx, db) as webhooks:
        endpoint = webhooks.create(
            url,
            event_types=event_types or ["*"],
            group_ids=groups or None,
            description=description,
            enabled=not disabled,
            ordered=ordered,
        )
    if as_json:
        print_json_lines([_plain(endpoint)])
    else:
        _show_endpoint(endpoint, "Created")


@app.command("list")
def list_(
    ctx: typer.Context, limit: LimitOption = 100, as_json: JsonOption = False, db: DbOption = None
) -> None:
    """List endpoints (never their secrets)."""
    with _webhooks(ctx, db) as webhooks:
        page = webhooks.list(limit=limit)
    if as_json:
        print_json_lines([_plain(e) for e in page.items])
        return
    from rich.table import Table

    table = Table(title=f"Webhooks ({page.count})", title_justify="left")
    for column in ("id", "url", "events", "groups", "ordered", "status"):
        table.add_column(column, overflow="fold")
    for e in page.items:
        status = "enabled" if e.enabled else f"[red]disabled[/] {escape(e.disabled_reason or '')}"
        table.add_row(
            e.id,
            escape(e.url),
            ", ".join(e.event_types),
            ", ".join(e.group_ids or ["all"]),
            "yes" if e.ordered else "no",
            status,
        )
    out().print(table)


@app.command("update")
def update(
    ctx: typer.Context,
    endpoint_id: IdArg,
    url: Annotated[str | None, typer.Option(help="New URL.")] = None,
    event_types: EventTypeOption = None,
    groups: GroupOption = None,
    all_groups: Annotated[
        bool, typer.Option("--all-groups", help="Drop the group filter.")
    ] = False,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Switch deliveries on or off.")
    ] = None,
    ordered: Annotated[
        bool | None, typer.Option("--ordered/--unordered", help="Per-group ordering.")
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Change an endpoint. Enabling it again forgets its failure streak."""
    if groups and all_groups:
        raise typer.BadParameter("give --group or --all-groups, not both")
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = url
    if event_types:
        changes["event_types"] = event_types
    if groups:
        changes["group_ids"] = groups
    if all_groups:
        changes["group_ids"] = None
    if description is not None:
        changes["description"] = description
    if enabled is not None:
        changes["enabled"] = enabled
    if ordered is not None:
        changes["ordered"] = ordered
    with _webhooks(ctx, db) as webhooks:
        endpoint = webhooks.update(endpoint_id, **changes)
    if as_json:
        print_json_lines([_plain(endpoint)])
    else:
        _show_endpoint(endpoint, "Updated")


@app.command("delete")
def delete(ctx: typer.Context, endpoint_id: IdArg, db: DbOption = None) -> None:
    """Delete an endpoint with its messages and delivery log."""
    with _webhooks(ctx, db) as webhooks:
        endpoint = webhooks.delete(endpoint_id)
    out().print(f"Deleted webhook {endpoint.id} ({escape(endpoint.url)})", soft_wrap=True)


@app.command("rotate-secret")
def rotate_secret(
    ctx: typer.Context, endpoint_id: IdArg, as_json: JsonOption = False, db: DbOption = None
) -> None:
    """Give an endpoint a new secret and print it (the old one signs too for a grace period)."""
    with _webhooks(ctx, db) as webhooks:
        endpoint = webhooks.rotate_secret(endpoint_id)
    if as_json:
        print_json_lines([_plain(endpoint)])
    else:
        _show_endpoint(endpoint, "Rotated the secret of")


@app.command("messages")
def messages(
    ctx: typer.Context,
    endpoint_id: IdArg,
    status: Annotated[Status | None, typer.Option(help="Only messages in this state.")] = None,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """An endpoint's messages, newest first."""
    with _webhooks(ctx, db) as webhooks:
        page = webhooks.messages(endpoint_id, status=status.value if status else None, limit=limit)
    if as_json:
        print_json_lines([_plain(m) for m in page.items])
        return
    from rich.table import Table

    table = Table(title=f"Messages ({page.count})", title_justify="left")
    for column in ("id", "event", "status", "attempts", "last", "next attempt"):
        table.add_column(column, overflow="fold")
    for m in page.items:
        last = str(m.last_status_code or "") if not m.last_error else escape(m.last_error)
        table.add_row(m.id, m.event_type, m.status, str(m.attempts), last, _time(m.next_attempt_at))
    out().print(table)


@app.command("attempts")
def attempts(
    ctx: typer.Context,
    endpoint_id: IdArg,
    message_id: Annotated[
        str | None, typer.Option("--message", help="Only this message's attempts.")
    ] = None,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Every delivery attempt of an endpoint, newest first."""
    with _webhooks(ctx, db) as webhooks:
        page = webhooks.attempts(endpoint_id, message_id=message_id, limit=limit)
    if as_json:
        print_json_lines([_plain(a) for a in page.items])
        return
    from rich.table import Table

    table = Table(title=f"Attempts ({page.count})", title_justify="left")
    for column in ("at", "message", "#", "status", "ms", "error"):
        table.add_column(column, overflow="fold")
    for a in page.items:
        table.add_row(
            _time(a.attempted_at),
            a.message_id,
            str(a.attempt),
            str(a.status_code or ""),
            str(a.duration_ms),
            escape(a.error or ""),
        )
    out().print(table)


@app.command("resend")
def resend(
    ctx: typer.Context,
    endpoint_id: IdArg,
    message_id: Annotated[str, typer.Argument(metavar="MESSAGE_ID", help="msg_...")],
    db: DbOption = None,
) -> None:
    """Queue a message again, due now, with a fresh retry schedule."""
    with _webhooks(ctx, db) as webhooks:
        message = webhooks.resend(endpoint_id, message_id)
    out().print(f"Queued {message.id} ({message.event_type}) again", soft_wrap=True)


def _parse_since(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            "expected an ISO 8601 time, e.g. 2026-01-31T12:00:00Z", param_hint="--since"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@app.command("replay")
def replay(
    ctx: typer.Context,
    endpoint_id: IdArg,
    since: Annotated[
        str, typer.Option("--since", help="ISO 8601 time: replay the events since then.")
    ],
    db: DbOption = None,
) -> None:
    """Queue a new delivery of every matching event committed since a time."""
    moment = _parse_since(since)
    with _webhooks(ctx, db) as webhooks:
        count = webhooks.replay(endpoint_id, moment)
    out().print(f"Queued {count} events since {moment.isoformat()} for {endpoint_id}")


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            metavar="DAYS",
            help="Remove finished messages last changed more than DAYS ago "
            "(default: GROUPWIRE_WEBHOOKS_RETENTION_DAYS).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Delete old finished messages and their attempts from the delivery log.

    Pending messages stay however old, and so do failed ones of ordered endpoints (resend them).
    """
    from groupwire.settings import MAX_RETENTION_DAYS

    if older_than is not None and not 0 < older_than <= MAX_RETENTION_DAYS:
        raise typer.BadParameter(
            f"must be more than 0 and at most {MAX_RETENTION_DAYS} days", param_hint="--older-than"
        )
    with _webhooks(ctx, db) as webhooks:
        age = timedelta(days=older_than) if older_than is not None else webhooks.config.retention
        removed = webhooks.prune(older_than=age)
    days = age / timedelta(days=1)
    out().print(
        f"Removed {removed} finished webhook messages (with their attempts) "
        f"last changed more than {days:g} days ago",
        soft_wrap=True,
    )
