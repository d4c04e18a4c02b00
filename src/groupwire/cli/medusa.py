"""``groupwire medusa``: capture a running Medusa store's customer changes as Groupwire events.

``capture`` reads Medusa's PostgreSQL through a logical replication slot (the streaming
replication protocol) until SIGTERM or Ctrl+C (the first start creates the publication and
the slot and copies the current state; with ``--medusa-redis`` it also publishes the events
into Medusa's own event bus);
``status`` shows the slot, Groupwire's position, the WAL the slot retains and its
``wal_status``; ``uninstall`` drops the slot and the publication as far as the role may,
printing what is left for their owner (and, with ``--forget``, forgets Groupwire's position);
``republish`` adds the jobs of Groupwire's events from a point on to Medusa's event bus again
(after its Redis lost them); ``gateway`` serves a reverse proxy in front of Medusa's Admin API
that runs Groupwire's before-hooks on customer-group writes. See docs/medusa.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from groupwire.cli.common import (
    DbOption,
    database_url,
    display_url,
    err,
    escape,
    fail,
    open_engine,
    open_groupwire,
    out,
)
from groupwire.cli.server import PluginOption
from groupwire.cli.signals import stop_requested

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

# groupwire.medusa.publish.DEFAULT_EVENTS, joined (named here so that --help imports no
# adapter; tests/cli/test_cli_startup.py holds the two equal)
DEFAULT_EVENTS = "customer_group.*"


def settings_sections() -> tuple[tuple[str, type[BaseSettings]], ...]:
    """The adapter's own settings, for ``groupwire config`` (docs/configuration.md)."""
    from groupwire.medusa.plugin import MedusaSettings
    from groupwire.medusa.publish import PublishSettings

    return (
        ("Medusa (plugin `groupwire.medusa.plugin`, see docs/medusa.md)", MedusaSettings),
        (
            "Medusa publishing (plugin `groupwire.medusa.publish`, see docs/medusa.md)",
            PublishSettings,
        ),
    )


app = typer.Typer(help="Capture a Medusa store's customer changes as Groupwire events.")

MedusaUrl = Annotated[
    str,
    typer.Option(
        "--medusa-url",
        envvar="GROUPWIRE_MEDUSA_URL",
        help="Medusa's PostgreSQL (postgresql://user@host/db); the role needs REPLICATION",
    ),
]
SlotOption = Annotated[
    str,
    typer.Option("--slot", envvar="GROUPWIRE_MEDUSA_SLOT", help="Replication slot name"),
]
PublicationOption = Annotated[
    str,
    typer.Option("--publication", envvar="GROUPWIRE_MEDUSA_PUBLICATION", help="Publication name"),
]


@app.command("capture")
def capture(
    ctx: typer.Context,
    medusa_url: MedusaUrl,
    db: DbOption = None,
    slot: SlotOption = "groupwire",
    publication: PublicationOption = "groupwire_medusa",
    schema: Annotated[str, typer.Option(help="Schema of Medusa's tables")] = "public",
    initial: Annotated[
        str,
        typer.Option(
            help="First start: 'silent' copies Medusa's current state without events, "
            "'events' records it as created / customer_added events"
        ),
    ] = "silent",
    resync: Annotated[
        bool,
        typer.Option(
            "--resync",
            help="When this store holds a copy but the slot is gone or lost: compare Medusa's "
            "state with the copy, record the differences as events (reason 'resync'), then "
            "capture from a new slot (docs/medusa.md, Recovery)",
        ),
    ] = False,
    plugin: PluginOption = None,
    medusa_redis: Annotated[
        str | None,
        typer.Option(
            "--medusa-redis",
            envvar="GROUPWIRE_MEDUSA_REDIS_URL",
            help="Also publish the events into Medusa's event bus on this Redis (redis://...)",
        ),
    ] = None,
    medusa_events: Annotated[
        str,
        typer.Option(
            "--medusa-events",
            envvar="GROUPWIRE_MEDUSA_EVENTS",
            help="Comma-separated event types or patterns to publish into Medusa",
        ),
    ] = DEFAULT_EVENTS,
    reconcile: Annotated[
        bool,
        typer.Option(
            "--reconcile",
            help="Also keep Medusa's smart groups (groupwire medusa smart-group set) equal to "
            "their rules, through Medusa's Admin API (--medusa-api, --medusa-api-key)",
        ),
    ] = False,
    medusa_api: Annotated[
        str | None,
        typer.Option("--medusa-api", envvar="GROUPWIRE_MEDUSA_API_URL", help="Medusa's server URL"),
    ] = None,
    medusa_api_key: Annotated[
        str | None,
        typer.Option(
            "--medusa-api-key",
            envvar="GROUPWIRE_MEDUSA_API_KEY",
            help="A secret API key of Medusa (sk_...)",
        ),
    ] = None,
    full_pass_seconds: Annotated[
        float, typer.Option(min=0.1, help="Seconds between the reconciler's full passes")
    ] = 60.0,
    max_requests: Annotated[
        float, typer.Option(min=0.1, help="The reconciler's requests per second at most")
    ] = 10.0,
) -> None:
    """Capture every committed change of Medusa's customer tables, until SIGTERM or Ctrl+C."""
    import psycopg

    from groupwire.medusa import slot as slots
    from groupwire.medusa.capture import CaptureError, CaptureOptions, MedusaCapture
    from groupwire.medusa.publish import MedusaPublishing, PublishSettings

    if initial not in ("silent", "events"):
        raise typer.BadParameter("must be 'silent' or 'events'", param_hint="--initial")
    publishing: list[MedusaPublishing] = []
    if medusa_redis:
        patterns = tuple(p.strip() for p in medusa_events.split(",") if p.strip())
        if not patterns:
            raise typer.BadParameter("names no event type", param_hint="--medusa-events")
        # The other GROUPWIRE_MEDUSA_* settings (queue, prefix, attempts, window) still apply.
        settings = PublishSettings(redis_url=medusa_redis, events=list(patterns))
        publishing.append(MedusaPublishing(settings.options()))
    if reconcile and not (medusa_api and medusa_api_key):
        raise typer.BadParameter(
            "needs --medusa-api and --medusa-api-key", param_hint="--reconcile"
        )
    url = database_url(ctx, db)
    options = CaptureOptions(
        medusa_url=medusa_url,
        slot=slot,
        publication=publication,
        schema=schema,
        initial=initial,  # type: ignore[arg-type]
        resync=resync,
    )
    plugins: list[object] = [*(plugin or []), *publishing]
    with stop_requested() as stopping, open_groupwire(url, plugins=plugins) as gw:
        runner = MedusaCapture(gw.service, options)
        try:
            outcome = runner.install()
        except (CaptureError, slots.PublicationDenied, psycopg.Error) as error:
            fail(f"cannot capture from {display_url(medusa_url)}: {error}")
        if reconcile:
            from groupwire.medusa.reconciler import ReconcilerOptions, reconcile_medusa

            reconcile_medusa(
                gw,
                ReconcilerOptions(
                    api_url=medusa_api or "",
                    api_key=medusa_api_key or "",
                    medusa_url=medusa_url,
                    slot=slot,
                    full_pass_seconds=full_pass_seconds,
                    max_requests_per_second=max_requests,
                ),
            )
        gw.start()
        out().print(
            f"Capturing {escape(display_url(medusa_url))} (slot {slot}, {outcome}) into "
            f"{escape(display_url(url))}. Stop with Ctrl+C.",
            soft_wrap=True,
        )
        if publishing:
            where = (
                "by the workers of the Redis bus (load the plugin groupwire.medusa.publish "
                "there, with GROUPWIRE_MEDUSA_REDIS_URL)"
                if gw.bus_relay is not None
                else "from this process"
            )
            out().print(
                f"Publishing {escape(', '.join(publishing[0].options.events))} into Medusa's "
                f"event bus at {escape(display_url(medusa_redis or ''))} {where}.",
                soft_wrap=True,
            )
        try:
            runner.run(stopping)
        except CaptureError as error:  # the slot was invalidated: no retry can help
            fail(f"capture from {display_url(medusa_url)} stopped: {error}")
        finally:
            runner.close()
        err().print("Stopping: finishing the current deliveries...", soft_wrap=True)
    err().print("Stopped.")


@app.command("status")
def status(
    ctx: typer.Context,
    medusa_url: MedusaUrl,
    db: DbOption = None,
    slot: SlotOption = "groupwire",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The slot, Groupwire's position and how much WAL the slot retains."""
    import psycopg

    from groupwire.medusa import slot as slots
    from groupwire.medusa.capture import capture_status
    from groupwire.medusa.reconciler import reconciler_status

    engine = open_engine(database_url(ctx, db))
    try:
        reconciler = reconciler_status(engine)
        with slots.connect(medusa_url) as conn:
            state = capture_status(engine, conn, slot)
    except psycopg.Error as error:
        fail(f"cannot read {display_url(medusa_url)}: {error}")
    finally:
        engine.dispose()
    values = state.as_dict()
    if reconciler is not None:
        values.update({f"reconciler_{k}": v for k, v in reconciler.items() if k != "name"})
    if as_json:
        typer.echo(json.dumps({**values, "warning": state.warning}, default=str))
        return
    for name, value in values.items():
        out().print(f"{name}: {escape(str(value))}", soft_wrap=True)
    if state.warning:
        err().print(f"[bold yellow]warning:[/] {escape(state.warning)}", soft_wrap=True)


UNINSTALL_LEFT = 3
"""``uninstall``'s exit code when something is left that only its owner may drop."""


@app.command("uninstall")
def uninstall(
    ctx: typer.Context,
    medusa_url: MedusaUrl,
    db: DbOption = None,
    slot: SlotOption = "groupwire",
    publication: PublicationOption = "groupwire_medusa",
    forget: Annotated[
        bool,
        typer.Option(
            "--forget", help="Also forget Groupwire's capture position and membership map"
        ),
    ] = False,
) -> None:
    """Drop the replication slot and the publication (stop capture for good first).

    Safe to run again: says what is already gone. Exit code 0 when both are gone, 3 when the
    role may not drop something (the publication made by the tables' owner): the SQL its
    owner must run is printed.
    """
    import psycopg

    from groupwire.medusa import slot as slots
    from groupwire.medusa import tables as bookkeeping

    try:
        with slots.connect(medusa_url) as conn:
            done = slots.drop(conn, slot, publication)
    except (psycopg.Error, slots.SlotInUse) as error:
        fail(f"cannot uninstall from {display_url(medusa_url)} (nothing was dropped): {error}")
    out().print(f"slot {slot}: {done.slot}", soft_wrap=True)
    out().print(f"publication {publication}: {done.publication}", soft_wrap=True)
    if forget:
        engine = open_engine(database_url(ctx, db))
        try:
            bookkeeping.forget(engine, slot)
        finally:
            engine.dispose()
        out().print("Groupwire's capture position and membership map: forgotten")
    if not done.complete:
        err().print(
            f"[bold yellow]left:[/] {escape('; '.join(done.why))}. The owner (or a superuser)"
            " must run, on Medusa's database:",
            soft_wrap=True,
        )
        for statement in done.owner_sql:
            out().print(f"    {escape(statement)}", soft_wrap=True)
        raise typer.Exit(UNINSTALL_LEFT)


@app.command("republish")
def republish(
    ctx: typer.Context,
    medusa_redis: Annotated[
        str,
        typer.Option(
            "--medusa-redis",
            envvar="GROUPWIRE_MEDUSA_REDIS_URL",
            help="Medusa's event-bus Redis (redis://...)",
        ),
    ],
    from_sequence: Annotated[
        int | None,
        typer.Option("--from", min=1, metavar="SEQUENCE", help="Events from this sequence on"),
    ] = None,
    from_time: Annotated[
        str | None,
        typer.Option(
            "--from-time", metavar="TIME", help="Events from this ISO 8601 time on (their time)"
        ),
    ] = None,
    db: DbOption = None,
    medusa_events: Annotated[
        str,
        typer.Option(
            "--medusa-events",
            envvar="GROUPWIRE_MEDUSA_EVENTS",
            help="Comma-separated event types or patterns, as given to the publisher",
        ),
    ] = DEFAULT_EVENTS,
) -> None:
    """Add Groupwire's events from a sequence or time on to Medusa's event bus again.

    The jobs are the publisher's own (the job id is the event id): one still in Medusa's Redis
    (waiting, or finished and kept) is left as it is, so nothing runs twice that is still
    there. Re-publishes up to the last event at the command's start."""
    from groupwire.medusa.publish import MedusaPublisher, PublishSettings, last_sequence

    if (from_sequence is None) == (from_time is None):
        raise typer.BadParameter("give either --from SEQUENCE or --from-time TIME")
    since = _parse_time(from_time) if from_time is not None else None
    patterns = tuple(p.strip() for p in medusa_events.split(",") if p.strip())
    if not patterns:
        raise typer.BadParameter("names no event type", param_hint="--medusa-events")
    options = PublishSettings(redis_url=medusa_redis, events=list(patterns)).options()
    engine = open_engine(database_url(ctx, db))
    publisher = MedusaPublisher(options, engine)
    try:
        upto = last_sequence(engine)
        after = from_sequence - 1 if from_sequence is not None else 0
        done = publisher.republish(after=after, upto=upto, since=since)
    except Exception as error:
        fail(f"cannot re-publish into {display_url(medusa_redis)}: {error}")
    finally:
        publisher.stop()
        engine.dispose()
    start = (
        f"sequence {from_sequence}" if from_sequence is not None else f"{since:%Y-%m-%dT%H:%M:%S}Z"
    )
    if not done.events:
        out().print(
            f"No event of {escape(', '.join(patterns))} from {start} on: nothing re-published.",
            soft_wrap=True,
        )
        return
    out().print(
        f"Re-published {done.events} events of {escape(', '.join(patterns))} (sequences "
        f"{done.first} to {done.last}) into Medusa's event bus at "
        f"{escape(display_url(medusa_redis))}: {done.added} added, {done.present} already "
        "there (waiting, or finished and kept), left as they were.",
        soft_wrap=True,
    )


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            "expected an ISO 8601 time, e.g. 2026-01-31T12:00:00Z", param_hint="--from-time"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@app.command("gateway")
def gateway(
    ctx: typer.Context,
    upstream: Annotated[
        str,
        typer.Option(
            envvar="GROUPWIRE_MEDUSA_UPSTREAM",
            help="Medusa's base URL (http://medusa:9000)",
        ),
    ],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 9001,
    db: DbOption = None,
    copy_wait: Annotated[
        float,
        typer.Option(min=0, help="Seconds to wait for capture to bring a row the hooks need"),
    ] = 2.0,
    max_body: Annotated[
        int, typer.Option(min=1, help="Largest customer-group write body read for the hooks")
    ] = 16 * 1024 * 1024,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for Medusa")] = 120.0,
    plugin: PluginOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Proxy Medusa's Admin API, running Groupwire's before-hooks on customer-group writes."""
    import uvicorn

    from groupwire.medusa.gateway import GatewayOptions, MedusaGateway

    url = database_url(ctx, db)
    gw = open_groupwire(url, plugins=plugin or [])
    try:
        options = GatewayOptions(
            upstream=upstream, copy_wait=copy_wait, max_body=max_body, timeout=timeout
        )
        config = uvicorn.Config(
            MedusaGateway(gw.service, options),
            host=host,
            port=port,
            log_level=log_level,
            lifespan="on",
            server_header=False,  # Medusa's own Date (and no Server) pass through
            date_header=False,
            timeout_graceful_shutdown=5,
        )
        out().print(
            f"Groupwire gateway on [bold]http://{host}:{port}[/] in front of "
            f"{escape(upstream)} (hooks of {escape(display_url(url))}). Stop with Ctrl+C.",
            soft_wrap=True,
        )
        with stop_requested():
            uvicorn.Server(config).run()
    finally:
        gw.close()
    err().print("Stopped.")


smart = typer.Typer(help="Rules of Medusa's customer groups, kept by capture --reconcile.")
app.add_typer(smart, name="smart-group")


@smart.command("set")
def smart_set(
    ctx: typer.Context,
    group_id: Annotated[str, typer.Argument(help="Medusa's customer group id")],
    rule: Annotated[str, typer.Argument(help="The rule as JSON, @file, or null (manual again)")],
    db: DbOption = None,
) -> None:
    """Set the rule of one of Medusa's groups (docs/smart-groups.md, Inside a Medusa store)."""
    from groupwire.domain.errors import GroupwireError
    from groupwire.medusa.smart_groups import set_rule

    text = rule
    if rule.startswith("@"):
        with open(rule[1:], encoding="utf-8") as handle:
            text = handle.read()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        fail(f'400 {{"type": "invalid_data", "message": "rule: not JSON: {error}"}}')
    engine = open_engine(database_url(ctx, db))
    try:
        saved = set_rule(engine, group_id, value, datetime.now(UTC))
    except GroupwireError as error:
        body = json.dumps({"type": error.type, "message": str(error)})
        fail(f"{404 if error.type == 'not_found' else 400} {body}")
    finally:
        engine.dispose()
    if saved is None:
        out().print(f"{escape(group_id)}: manual again (its members stay as they are).")
    else:
        out().print(f"{escape(group_id)}: rule version {saved.rule_version}.")


@smart.command("list")
def smart_list(
    ctx: typer.Context,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Medusa's groups that have a rule."""
    from groupwire.medusa.smart_groups import list_rules

    engine = open_engine(database_url(ctx, db))
    try:
        with engine.connect() as conn:
            rules = list_rules(conn)
    finally:
        engine.dispose()
    items = [
        {"group_id": r.group_id, "rule": r.rule, "rule_version": r.rule_version} for r in rules
    ]
    if as_json:
        typer.echo(json.dumps(items))
        return
    for item in items:
        out().print(
            f"{item['group_id']}  v{item['rule_version']}  {escape(json.dumps(item['rule']))}",
            soft_wrap=True,
        )
