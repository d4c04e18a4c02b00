"""``groupwire events tail``: read the event log, and follow it as it grows.

Following polls the ``event`` table with a sequence cursor (``after``), so it sees the events
of every process writing to the same database: API servers, workers, other CLI commands.
Sequences are gap-free and assigned in commit order, so the cursor never skips an event.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

from groupwire.cli.common import (
    DbOption,
    JsonOption,
    database_url,
    domain_errors,
    escape,
    open_groupwire,
    out,
    print_json_lines,
)
from groupwire.domain.models import Event

if TYPE_CHECKING:
    from groupwire.app import Groupwire

app = typer.Typer(help="The event log (also the audit trail).", no_args_is_help=True)

PAGE = 500

TYPE_STYLES = {
    "created": "green",
    "customer_added": "bold green",
    "updated": "yellow",
    "metadata_updated": "yellow",
    "customer_removed": "bold magenta",
    "deleted": "red",
}


def event_line(event: Event) -> str:
    """One readable Rich-markup line: sequence, time, type, subject, actor and the data."""
    style = TYPE_STYLES.get(event.type.split(".", 1)[-1], "cyan")
    time_text = event.time.strftime("%H:%M:%S.%f")[:-3]
    actor = f" [dim]by {escape(event.actor)}[/]" if event.actor else ""
    return (
        f"[dim]#{event.sequence:<5}[/] [dim]{time_text}[/] [{style}]{event.type:<33}[/] "
        f"{escape(event.subject)}{actor}  [dim]{escape(summarise(event))}[/]"
    )


def summarise(event: Event) -> str:
    """The data as compact JSON, without what the line already shows (subject, time)."""
    shown = {
        k: v
        for k, v in event.data.items()
        if k != "timestamp" and not (k in ("id", "group_id") and v == event.subject)
    }
    return json.dumps(shown, default=str, ensure_ascii=False, separators=(",", ":"))


@app.command("tail")
def tail(
    ctx: typer.Context,
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            "-t",
            help="Event type or pattern such as customer_group.* (repeatable).",
            show_default=False,
        ),
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Only events about this group or customer id.")
    ] = None,
    after: Annotated[
        int | None,
        typer.Option(
            min=0, help="Start after this sequence number (0: from the very first event)."
        ),
    ] = None,
    last: Annotated[
        int, typer.Option(min=0, help="Without --after: how many recent events to show first.")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", "-f", help="Keep printing new events.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after printing this many events.")
    ] = None,
    for_seconds: Annotated[
        float | None, typer.Option("--for", min=0, help="Stop following after this many seconds.")
    ] = None,
    interval: Annotated[float, typer.Option(min=0.01, help="Seconds between two polls.")] = 0.5,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Print the event log, one line per event; with --follow, keep printing new ones."""
    deadline = time.monotonic() + for_seconds if for_seconds is not None else None
    printed = 0

    def emit(events: list[Event]) -> bool:
        """Print events up to the limit; False once the limit is reached."""
        nonlocal printed
        for event in events:
            if limit is not None and printed >= limit:
                return False
            if as_json:
                print_json_lines([event.envelope()])
            else:
                out().print(event_line(event), soft_wrap=True)
            printed += 1
        return limit is None or printed < limit

    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        cursor, recent = _start(gw, types, subject, after, last)
        if not emit(recent):
            return
        while True:
            events = gw.events.list(type=types, subject=subject, after=cursor, limit=PAGE)
            if events:
                cursor = events[-1].sequence
                if not emit(events):
                    return
                continue
            if not follow:
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            time.sleep(interval if remaining is None else min(interval, remaining))


def _start(
    gw: Groupwire,
    types: list[str] | None,
    subject: str | None,
    after: int | None,
    last: int,
) -> tuple[int, list[Event]]:
    """The cursor to read on from, and the recent events to print before it.

    With ``--after`` nothing comes first: every matching event past it is read, page by page.
    Without it, the ``last`` most recent matching events come first, and reading continues
    after the end of the log as it was when they were read.
    """
    if after is not None:
        return after, []
    end = gw.events.last_sequence()
    if last == 0:
        return end, []
    recent = gw.events.list(type=types, subject=subject, limit=last, descending=True)
    recent.reverse()
    return max([end, *(e.sequence for e in recent)]), recent
