"""Fan-out keeps the enabled endpoints in memory: commits that match none cost no query, and
an endpoint created or changed by another process still gets every event committed after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from groupwire import Groupwire
from groupwire.webhooks import fanout
from tests.webhooks.conftest import open_gw

RECEIVER = "http://127.0.0.1:9/hook"  # never called: these tests only look at queued messages


@contextmanager
def statements(gw: Groupwire) -> Iterator[list[str]]:
    """The SQL statements ``gw``'s engine runs inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(gw.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(gw.engine, "before_cursor_execute", record)


def reads_of_endpoints(seen: list[str]) -> int:
    """How many statements read the endpoints; fails on any other statement but BEGIN
    (SQLite's explicit one) and COMMIT/ROLLBACK."""
    other = [s for s in seen if s.split()[0].upper() not in {"BEGIN", "COMMIT", "ROLLBACK"}]
    assert all(s.startswith("SELECT") and "webhook_endpoint" in s for s in other), other
    return len(other)


def queued(gw: Groupwire, endpoint_id: str) -> list[str]:
    return [message.event_type for message in gw.webhooks.messages(endpoint_id).items]


def delivered_by_a_running_relay(gw: Groupwire) -> Callable[[], None]:
    """Start ``gw``'s relay: its commits hand their events (with their routing version) to
    the subscribers' threads; it polls the log for others' commits only once a minute."""
    gw.start()

    def deliver() -> None:
        assert gw.drain(10)

    return deliver


def delivered_from_the_log(gw: Groupwire) -> Callable[[], None]:
    """Deliver in the caller's thread, every event read back from the log (no version)."""

    def deliver() -> None:
        gw.deliver_pending()

    return deliver


@contextmanager
def two_processes(
    database_url: str, delivery: Callable[[Groupwire], Callable[[], None]]
) -> Iterator[tuple[Groupwire, Groupwire, Callable[[], None]]]:
    """``here`` (delivering as ``delivery`` sets it up, polling the log only once a minute),
    ``there`` on the same database, and how ``here`` delivers what it committed."""
    here = open_gw(database_url, relay_poll_interval=60)
    there = open_gw(database_url)
    try:
        yield here, there, delivery(here)
    finally:
        here.close()
        there.close()


DELIVERIES = pytest.mark.parametrize(
    "delivery", [delivered_from_the_log, delivered_by_a_running_relay], ids=["log", "relay"]
)


def test_a_running_relay_reads_the_endpoints_once_while_the_routing_version_holds(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    read = fanout.enabled_endpoints_as_of
    monkeypatch.setattr(fanout, "enabled_endpoints_as_of", lambda c: reads.append(1) or read(c))
    gw = open_gw(database_url, relay_poll_interval=60)
    try:
        deliver = delivered_by_a_running_relay(gw)
        gw.webhooks.create(RECEIVER, event_types=["customer.created"])
        gw.groups.create("First")
        deliver()
        reads.clear()

        for n in range(5):  # each commit past the position the endpoints were read at
            gw.groups.create(f"Group {n}")
            deliver()

        assert reads == []
    finally:
        gw.close()


def test_commits_matching_no_endpoint_run_no_statement_once_the_endpoints_are_known(
    gw: Groupwire,
) -> None:
    gw.webhooks.create(RECEIVER, event_types=["customer.created"])
    gw.groups.create("First")
    [first] = gw.events.list(type="customer_group.created")
    with statements(gw) as seen:
        gw.webhooks.handle_events([first])  # reads the endpoints once
    assert reads_of_endpoints(seen) == 1

    with statements(gw) as seen:
        gw.webhooks.handle_events([first])
    assert seen == []

    gw.groups.create("Second")  # past the position the endpoints were read at: read again
    second = max(gw.events.list(type="customer_group.created"), key=lambda e: e.sequence)
    assert second.sequence > first.sequence
    with statements(gw) as seen:
        gw.webhooks.handle_events([second])
    assert reads_of_endpoints(seen) == 1
    assert not any("webhook_message" in statement for statement in seen)


@DELIVERIES
def test_an_endpoint_created_by_another_process_gets_the_events_committed_after_it(
    database_url: str, delivery: Callable[[Groupwire], Callable[[], None]]
) -> None:
    with two_processes(database_url, delivery) as (here, there, deliver):
        here.groups.create("Before")
        deliver()  # this process now knows there is no endpoint

        endpoint = there.webhooks.create(RECEIVER, event_types=["customer_group.*"])
        here.groups.create("After")
        deliver()

        assert queued(there, endpoint.id) == ["customer_group.created"]
        [message] = there.webhooks.messages(endpoint.id).items
        [after] = [e for e in here.events.list() if e.id == message.event_id]
        assert after.data["name"] == "After"


@DELIVERIES
def test_an_endpoint_widened_or_enabled_by_another_process_gets_the_events_after_the_change(
    database_url: str, delivery: Callable[[Groupwire], Callable[[], None]]
) -> None:
    with two_processes(database_url, delivery) as (here, there, deliver):
        narrow = there.webhooks.create(RECEIVER, event_types=["customer.created"])
        paused = there.webhooks.create(RECEIVER, event_types=["*"], enabled=False)
        here.groups.create("Unmatched")
        deliver()  # this process now knows both endpoints match no group event
        assert queued(there, narrow.id) == [] and queued(there, paused.id) == []

        there.webhooks.update(narrow.id, event_types=["customer_group.*"])
        there.webhooks.update(paused.id, enabled=True)
        here.groups.create("Matched")
        deliver()

        assert queued(there, narrow.id) == ["customer_group.created"]
        assert queued(there, paused.id) == ["customer_group.created"]


@DELIVERIES
def test_an_endpoint_narrowed_disabled_or_deleted_by_another_process_gets_no_later_event(
    database_url: str, delivery: Callable[[Groupwire], Callable[[], None]]
) -> None:
    with two_processes(database_url, delivery) as (here, there, deliver):
        narrowed = there.webhooks.create(RECEIVER, event_types=["customer_group.*"])
        disabled = there.webhooks.create(RECEIVER, event_types=["customer_group.*"])
        deleted = there.webhooks.create(RECEIVER, event_types=["customer_group.*"])
        kept = there.webhooks.create(RECEIVER, event_types=["customer_group.*"])
        here.groups.create("Everyone")
        deliver()  # this process now knows all four match group events
        assert [queued(there, e.id) for e in (narrowed, disabled, kept)] == [
            ["customer_group.created"]
        ] * 3

        there.webhooks.update(narrowed.id, event_types=["customer.created"])
        there.webhooks.update(disabled.id, enabled=False)
        there.webhooks.delete(deleted.id)
        here.groups.create("Only the kept one")
        deliver()

        assert queued(there, narrowed.id) == ["customer_group.created"]
        assert queued(there, disabled.id) == ["customer_group.created"]
        assert queued(there, kept.id) == ["customer_group.created"] * 2
        assert {e.id for e in there.webhooks.list().items} == {narrowed.id, disabled.id, kept.id}
