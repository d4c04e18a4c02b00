"""``groupwire stats``: a group's members over time, and rebuilding the rollup behind it."""

from __future__ import annotations

from typing import Annotated

import typer

from groupwire.cli.audit import _time
from groupwire.cli.common import (
    DbOption,
    JsonOption,
    database_url,
    domain_errors,
    find_group,
    open_groupwire,
    out,
    print_json_lines,
)
from groupwire.domain.errors import NotFound

app = typer.Typer(help="Group analytics from the event log.", no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context,
    group: Annotated[str, typer.Argument(help="Group id or name (deleted groups: the id).")],
    granularity: Annotated[str, typer.Option(help="hour or day.")] = "day",
    since: Annotated[str | None, typer.Option(help="Start (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="End, exclusive (ISO 8601).")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Members now, and joins, leaves and members per hour or day."""
    from groupwire.analytics import analytics_of

    start, end = _time(since, "--since"), _time(until, "--until")
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        try:
            group_id = find_group(gw, group).id
        except NotFound:
            group_id = group
        stats = analytics_of(gw).stats(group_id, granularity=granularity, since=start, until=end)
    if as_json:
        print_json_lines([stats.as_dict()])
        return
    from rich.table import Table

    table = Table(title=f"{stats.group_id}: {stats.member_count} members", title_justify="left")
    table.add_column(granularity)
    for name in ("joins", "leaves", "members"):
        table.add_column(name, justify="right")
    fmt = "%Y-%m-%d %H:00" if granularity == "hour" else "%Y-%m-%d"
    for point in stats.series:
        table.add_row(
            point.bucket.strftime(fmt), str(point.joins), str(point.leaves), str(point.members)
        )
    out().print(table)


@app.command("rebuild")
def rebuild(ctx: typer.Context, db: DbOption = None) -> None:
    """Recompute the statistics rollup from the whole event log (backfill)."""
    from groupwire.analytics import analytics_of

    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        folded = analytics_of(gw).rebuild()
    out().print(f"Rebuilt the rollup from {folded} membership events")
