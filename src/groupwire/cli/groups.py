"""``groupwire groups ...``: list, create and delete customer groups; add and remove members.

Adding or removing members from a file (``--csv``) works in two steps:

1. resolve: every line is resolved to a customer id before anything is written. If any line
   names no customer, the command lists them all and exits 1 having written NOTHING (unless
   ``--skip-unknown``: then the customers that were found are changed, the unknown ones are
   listed, and the exit code is still 1);
2. write, in chunks of ``--chunk-size`` customers: each chunk is one all-or-nothing service
   call (one transaction, its hooks and events). If a chunk fails (a customer deleted in the
   meantime, a before-hook's veto), that chunk writes nothing, the chunks before it stay
   written, no later chunk is tried, and the command exits 1 saying how far it got.
   Running the same command again after fixing the cause (or after an interruption, even
   one between a chunk's commit and its report) finishes the job, changing nothing twice:
   each chunk carries an idempotency key derived from the action, the group and the chunk's
   customers, so a chunk an earlier run committed is skipped (``AlreadyApplied``), even if
   its members changed since; the summary counts those customers apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from groupwire.cli.common import (
    DbOption,
    JsonOption,
    cli_context,
    database_url,
    domain_errors,
    err,
    escape,
    fail,
    find_group,
    open_groupwire,
    out,
    parse_metadata,
    print_json_lines,
)
from groupwire.cli.customer_refs import (
    CustomerFileError,
    Unknown,
    refs_from_csv,
    refs_from_values,
    resolve,
)
from groupwire.cli.customers import email_label
from groupwire.domain.errors import AlreadyApplied, GroupwireError
from groupwire.domain.models import CustomerGroup

if TYPE_CHECKING:
    from groupwire.app import Groupwire

app = typer.Typer(help="Customer groups and their members.", no_args_is_help=True)

GroupArg = Annotated[str, typer.Argument(help="The group's id or exact name.")]
CustomerOption = Annotated[
    list[str] | None,
    typer.Option(
        "--customer",
        "-c",
        help="A customer id or email (repeatable).",
        show_default=False,
    ),
]
CsvOption = Annotated[
    Path | None,
    typer.Option(
        "--csv",
        help="A CSV file of customer emails or ids: one per line, or a column named email/id.",
        dir_okay=False,
        show_default=False,
    ),
]
ChunkOption = Annotated[
    int, typer.Option("--chunk-size", min=1, max=5000, help="Customers per transaction.")
]
SkipUnknownOption = Annotated[
    bool,
    typer.Option(
        "--skip-unknown",
        help="Change the customers that were found even if some lines name nobody.",
    ),
]

FreshOption = Annotated[
    bool,
    typer.Option(
        "--fresh",
        help="Write every chunk, even those an earlier run of the same command already wrote "
        "(within GROUPWIRE_IDEMPOTENCY_KEY_TTL).",
    ),
]

MAX_LISTED_UNKNOWN = 20


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def group_json(group: CustomerGroup, members: int | None = None) -> dict[str, object]:
    row: dict[str, object] = {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "metadata": group.metadata,
        "created_by": group.created_by,
        "created_at": group.created_at.isoformat(),
        "updated_at": group.updated_at.isoformat(),
    }
    if members is not None:
        row["member_count"] = members
    return row


@app.command("list")
def list_groups(
    ctx: typer.Context,
    q: Annotated[str | None, typer.Option("--q", help="Search in names and descriptions.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List groups (oldest first) with their member counts."""
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        page = gw.groups.list(q=q, limit=limit, offset=offset)
        counts = {g.id: gw.customers.list(group_ids=[g.id], limit=0).count for g in page.items}
    if as_json:
        print_json_lines([group_json(g, counts[g.id]) for g in page.items])
        return
    from rich.table import Table

    table = Table(
        title=f"Customer groups ({len(page.items)} of {page.count})", title_justify="left"
    )
    table.add_column("id", overflow="fold", style="dim")
    table.add_column("name", style="bold")
    table.add_column("members", justify="right")
    table.add_column("description", overflow="fold")
    for group in page.items:
        table.add_row(group.id, group.name, str(counts[group.id]), group.description or "")
    out().print(table)


@app.command("create")
def create_group(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique among live groups.")],
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    metadata: Annotated[
        str | None, typer.Option(help='A JSON object, e.g. \'{"tier": "gold"}\'.')
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Create a group and print its id."""
    values = parse_metadata(metadata)
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        group = gw.groups.create(
            name, description=description, metadata=values, context=cli_context()
        )
    if as_json:
        print_json_lines([group_json(group)])
    else:
        out().print(f"Created group [bold]{escape(group.name)}[/] {group.id}", soft_wrap=True)


@app.command("delete")
def delete_group(ctx: typer.Context, group: GroupArg, db: DbOption = None) -> None:
    """Delete a group; its members leave it (events with reason ``group_deleted``)."""
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        found = find_group(gw, group)
        members = len(gw.groups.members(found.id))
        gw.groups.delete(found.id, context=cli_context())
    out().print(
        f"Deleted group [bold]{escape(found.name)}[/] {found.id} ({members} members removed)",
        soft_wrap=True,
    )


@app.command("members")
def list_members(
    ctx: typer.Context, group: GroupArg, as_json: JsonOption = False, db: DbOption = None
) -> None:
    """List a group's members (in the order they joined)."""
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        found = find_group(gw, group)
        members = gw.groups.members(found.id)
    if as_json:
        print_json_lines([{"id": c.id, "email": c.email} for c in members])
        return
    from rich.table import Table

    table = Table(title=f"{found.name}: {plural(len(members), 'member')}", title_justify="left")
    table.add_column("id", overflow="fold", style="dim")
    table.add_column("email")
    table.add_column("name")
    for c in members:
        table.add_row(c.id, email_label(c), " ".join(p for p in (c.first_name, c.last_name) if p))
    out().print(table)


@app.command("add")
def add_members(
    ctx: typer.Context,
    group: GroupArg,
    customer: CustomerOption = None,
    csv_file: CsvOption = None,
    chunk_size: ChunkOption = 500,
    skip_unknown: SkipUnknownOption = False,
    fresh: FreshOption = False,
    db: DbOption = None,
) -> None:
    """Add customers to a group, from --customer options or a --csv file."""
    _change_members(
        ctx, "add", group, customer, csv_file, chunk_size, skip_unknown, db, fresh=fresh
    )


@app.command("remove")
def remove_members(
    ctx: typer.Context,
    group: GroupArg,
    customer: CustomerOption = None,
    csv_file: CsvOption = None,
    chunk_size: ChunkOption = 500,
    skip_unknown: SkipUnknownOption = False,
    fresh: FreshOption = False,
    db: DbOption = None,
) -> None:
    """Remove customers from a group, from --customer options or a --csv file."""
    _change_members(
        ctx, "remove", group, customer, csv_file, chunk_size, skip_unknown, db, fresh=fresh
    )


def _change_members(
    ctx: typer.Context,
    action: str,
    group: str,
    customers: list[str] | None,
    csv_file: Path | None,
    chunk_size: int,
    skip_unknown: bool,
    db: str | None,
    *,
    fresh: bool = False,
) -> None:
    if bool(customers) == bool(csv_file):
        raise typer.BadParameter("give either --customer (one or more) or --csv, not both")
    try:
        refs = refs_from_csv(csv_file) if csv_file else refs_from_values(customers or [])
    except CustomerFileError as error:
        fail(str(error))
    if not refs:
        fail(f"{csv_file} names no customers" if csv_file else "no customers given")
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        found = find_group(gw, group)
        resolution = resolve(gw, refs)
        if resolution.unknown:
            _report_unknown(resolution.unknown, written=skip_unknown)
            if not skip_unknown:
                raise typer.Exit(1)
        done, failure = _write_in_chunks(gw, action, found, resolution.ids, chunk_size, fresh=fresh)
    verb = "Added" if action == "add" else "Removed"
    preposition = "to" if action == "add" else "from"
    earlier = sum(c.size for c in done if c.earlier)
    skipped = sum(c.size for c in done if not c.earlier) - sum(c.changed for c in done)
    noun = "already members" if action == "add" else "not members"
    changed = sum(c.changed for c in done)
    summary = (
        f"{verb} {plural(changed, 'customer')} {preposition} "
        f"[bold]{escape(found.name)}[/] ({skipped} {noun} or left out by hooks)"
    )
    if earlier:
        summary += f"; {plural(earlier, 'customer')} written by an earlier run, skipped"
    out().print(summary, soft_wrap=True)
    if failure:
        fail(failure)
    if resolution.unknown:
        raise typer.Exit(1)


@dataclass(frozen=True, slots=True)
class ChunkWritten:
    """One committed chunk: how many customers it named and how many really changed
    (``earlier``: committed by an earlier run of the same command, not this one)."""

    size: int
    changed: int
    earlier: bool = False


def chunk_key(action: str, group_id: str, chunk: list[str]) -> str:
    """The idempotency key of one chunk: the same action, group and customers, the same key."""
    import hashlib

    digest = hashlib.sha256("\n".join([action, group_id, *chunk]).encode("utf-8"))
    return f"cli-{action}-{digest.hexdigest()}"


def _write_in_chunks(
    gw: Groupwire,
    action: str,
    group: CustomerGroup,
    ids: list[str],
    size: int,
    *,
    fresh: bool = False,
) -> tuple[list[ChunkWritten], str | None]:
    """Write chunk after chunk; stop at the first that fails. Returns the written chunks and
    the failure's description (None when every chunk was written). Each chunk carries its
    idempotency key (none when ``fresh``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
    from sqlalchemy.exc import SQLAlchemyError

    base = cli_context()
    done: list[ChunkWritten] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err(), transient=False) as progress:
        task = progress.add_task(f"{action} {group.name}", total=len(ids))
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            key = None if fresh else chunk_key(action, group.id, chunk)
            context = replace(base, idempotency_key=key)
            try:
                if action == "add":
                    change = gw.groups.add_customers(group.id, chunk, context=context)
                else:
                    change = gw.groups.remove_customers(group.id, chunk, context=context)
            except AlreadyApplied:
                done.append(ChunkWritten(len(chunk), 0, earlier=True))
                progress.advance(task, len(chunk))
                continue
            except (GroupwireError, SQLAlchemyError) as error:
                reason = (
                    f"{error.message} ({error.type})"
                    if isinstance(error, GroupwireError)
                    else f"database error: {str(error).splitlines()[0]}"
                )
                first, last = start + 1, start + len(chunk)
                return done, (
                    f"customers {first}-{last} of {len(ids)} were not written: {reason}; "
                    "earlier chunks were written, later ones not tried"
                )
            done.append(ChunkWritten(len(chunk), len(change.added) + len(change.removed)))
            progress.advance(task, len(chunk))
    return done, None


def _report_unknown(unknown: list[Unknown], *, written: bool) -> None:
    console = err()
    consequence = "skipped" if written else "nothing was written"
    names = "entry names" if len(unknown) == 1 else "entries name"
    console.print(
        f"[bold red]{len(unknown)} {names} no customer[/] ({consequence}):", soft_wrap=True
    )
    for item in unknown[:MAX_LISTED_UNKNOWN]:
        console.print(f"  {escape(item.describe())}", soft_wrap=True)
    if len(unknown) > MAX_LISTED_UNKNOWN:
        console.print(f"  ... and {len(unknown) - MAX_LISTED_UNKNOWN} more", soft_wrap=True)


# --- smart groups ----------------------------------------------------------------------------

RuleArg = Annotated[
    str,
    typer.Argument(
        help='The rule as JSON, e.g. \'{"orders.total": {"currency": "eur", "$gte": 1000}}\','
        ' "null" for none, or @file.json (see docs/smart-groups.md).'
    ),
]


def _parse_rule_argument(text: str) -> dict[str, object] | None:
    import json

    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as error:
            fail(f"cannot read the rule file: {error}")
    try:
        value = json.loads(text)
    except ValueError as error:
        fail(f"the rule is not JSON: {error}")
    if value is not None and not isinstance(value, dict):
        fail("the rule must be a JSON object or null")
    return value


@app.command("preview-rule")
def preview_rule(
    ctx: typer.Context,
    group: GroupArg,
    rule: RuleArg,
    limit: Annotated[int, typer.Option(help="Customer ids listed of each.")] = 10,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Who would join and who would leave the group under RULE (nothing is written)."""
    parsed = _parse_rule_argument(rule)
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        found = find_group(gw, group)
        preview = gw.groups.preview_rule(found.id, parsed, limit=limit)
    if as_json:
        print_json_lines(
            [
                {
                    "joining": {"count": preview.joining, "customer_ids": preview.joining_ids},
                    "leaving": {"count": preview.leaving, "customer_ids": preview.leaving_ids},
                }
            ]
        )
        return
    console = out()
    console.print(
        f"[bold]{escape(found.name)}[/]: {plural(preview.joining, 'customer')} would join,"
        f" {plural(preview.leaving, 'customer')} would leave",
        soft_wrap=True,
    )
    for label, ids in (("join", preview.joining_ids), ("leave", preview.leaving_ids)):
        for cid in ids:
            console.print(f"  {label}  {cid}", soft_wrap=True)


@app.command("flips")
def flips(
    ctx: typer.Context,
    group: GroupArg,
    limit: Annotated[int, typer.Option(help="Flips listed.")] = 20,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The smart group's next scheduled flips: when each customer's time condition is
    decided again (earliest first)."""
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        found = find_group(gw, group)
        upcoming = gw.groups.next_flips(found.id, limit=limit)
    if as_json:
        print_json_lines([{"customer_id": cid, "at": at.isoformat()} for cid, at in upcoming])
        return
    console = out()
    console.print(
        f"[bold]{escape(found.name)}[/]: {plural(len(upcoming), 'scheduled flip')}", soft_wrap=True
    )
    for cid, at in upcoming:
        console.print(f"  {at.isoformat()}  {cid}", soft_wrap=True)


@app.command("set-rule")
def set_rule(
    ctx: typer.Context,
    group: GroupArg,
    rule: RuleArg,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream",
            help="Save the rule, then apply it in committed chunks (a sweep, resumable"
            " after a crash) with a progress bar, instead of in one transaction.",
        ),
    ] = False,
    chunk: Annotated[int, typer.Option(min=1, help="Customers decided per chunk.")] = 1000,
    db: DbOption = None,
) -> None:
    """Make the group a smart group with RULE (applied to every customer at once, in one
    transaction; with --stream, in committed chunks), or manual again with "null" (its
    members stay). A sweep of the rule (--stream, or a rule reading time) is run here with a
    progress bar, chunk by chunk, alongside any worker."""
    parsed = _parse_rule_argument(rule)
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        found = find_group(gw, group)
        before = gw.events.last_sequence()
        updated = gw.groups.update(found.id, rule=parsed, stream=stream, context=cli_context())
        if parsed is not None:
            _run_sweep(gw, found, chunk)
        joined, left = _count_moves(gw, found.id, before)
    if parsed is None:
        out().print(f"[bold]{escape(found.name)}[/] is a manual group again", soft_wrap=True)
        return
    out().print(
        f"[bold]{escape(found.name)}[/] rule version {updated.rule_version}:"
        f" {plural(joined, 'customer')} joined, {plural(left, 'customer')} left",
        soft_wrap=True,
    )


def _count_moves(gw: Groupwire, group_id: str, after: int) -> tuple[int, int]:
    """Joins and leaves of the group after event ``after``, read a page at a time."""
    joined = left = 0
    while True:
        page = gw.events.list(
            type=["customer_group.customer_added", "customer_group.customer_removed"],
            subject=group_id,
            after=after,
            limit=5000,
        )
        for event in page:
            if event.type.endswith("customer_added"):
                joined += 1
            else:
                left += 1
        if len(page) < 5000:
            return joined, left
        after = page[-1].sequence


@app.command("sweep")
def sweep(
    ctx: typer.Context,
    group: GroupArg,
    chunk: Annotated[int, typer.Option(min=1, help="Customers decided per chunk.")] = 1000,
    db: DbOption = None,
) -> None:
    """Finish the group's sweep (a rule saved with --stream, or one reading time) here, with
    a progress bar: after an interrupted set-rule, when no worker runs."""
    with open_groupwire(database_url(ctx, db)) as gw, domain_errors():
        found = find_group(gw, group)
        swept = _run_sweep(gw, found, chunk)
    message = "swept" if swept else "has no sweep to run"
    out().print(f"[bold]{escape(found.name)}[/] {message}", soft_wrap=True)


def _run_sweep(gw: Groupwire, group: CustomerGroup, chunk: int) -> bool:
    """Run the group's sweep to its end, a committed chunk at a time (another process
    holding it: wait and show its progress); False when there was none."""
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    state = gw.groups.sweep_progress(group.id)
    if state is None:
        return False
    done, total = state
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    context = cli_context()
    with Progress(*columns, console=err(), transient=False) as progress:
        task = progress.add_task(f"rule of {group.name}", total=total, completed=done)
        while True:
            decided = gw.groups.sweep(group.id, limit=chunk, context=context)
            if decided is None:
                progress.update(task, completed=total)
                return True
            if decided:
                done += decided
                if done >= total:  # a rule reading time: its flips' pass follows
                    state = gw.groups.sweep_progress(group.id)
                    if state is not None and state[0] < done:
                        done, total = state
                        progress.update(task, description=f"next flips of {group.name}")
                progress.update(task, completed=min(done, total), total=total)
                continue
            time.sleep(0.2)  # another process holds the sweep's chunk: show its progress
            state = gw.groups.sweep_progress(group.id)
            if state is not None:
                done, total = state
                progress.update(task, completed=done, total=total)
