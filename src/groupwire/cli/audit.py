"""``groupwire audit export``: a group's or a customer's event log as CSV or JSON lines."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from groupwire.cli.common import DbOption, database_url, domain_errors, fail, open_engine

app = typer.Typer(help="Audit trails for compliance.", no_args_is_help=True)


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter("must be an ISO 8601 date or time", param_hint=name) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@app.command("export")
def export(
    ctx: typer.Context,
    group: Annotated[str | None, typer.Option("--group", help="A customer group id.")] = None,
    customer: Annotated[
        str | None, typer.Option("--customer", help="A customer id (memberships included).")
    ] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="csv or jsonl.")] = "csv",
    since: Annotated[str | None, typer.Option(help="Events at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Events before (ISO 8601).")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Export the event log of one group or one customer, with actor and time of each change."""
    from groupwire.audit.export import FORMATS, export_lines, trail

    if (group is None) == (customer is None):
        raise typer.BadParameter("give exactly one of --group and --customer")
    if format not in FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}", param_hint="--format")
    start, end = _time(since, "--since"), _time(until, "--until")
    engine = open_engine(database_url(ctx, db))
    try:
        with domain_errors():
            events = trail(engine, group_id=group, customer_id=customer, since=start, until=end)
            if output is None:
                for line in export_lines(events, format):
                    sys.stdout.write(line)
                sys.stdout.flush()
                return
            try:
                with output.open("w", encoding="utf-8", newline="") as file:
                    for line in export_lines(events, format):
                        file.write(line)
            except OSError as error:
                fail(f"cannot write {output}: {error.strerror or error}")
    finally:
        engine.dispose()
