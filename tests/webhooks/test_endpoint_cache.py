"""Fan-out keeps the enabled endpoints in memory: commits that match none cost no query, and
an endpoint created or changed by another process still gets every event committed after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from groupwire import Groupwire
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


def test_an_endpoint_created_by_another_process_gets_the_events_committed_after_it(
    database_url: str,
) -> None:
    here = open_gw(database_url)
    there = open_gw(database_url)
    try:
        here.groups.create("Before")
        here.deliver_pending()  # this process now knows there is no endpoint

        endpoint = there.webhooks.create(RECEIVER, event_types=["customer_group.*"])
        here.groups.create("After")
        here.deliver_pending()

        assert queued(there, endpoint.id) == ["customer_group.created"]
        [message] = there.webhooks.messages(endpoint.id).items
        [after] = [e for e in here.events.list() if e.id == message.event_id]
        assert after.data["name"] == "After"
    finally:
        here.close()
        there.close()


def test_an_endpoint_widened_or_enabled_by_another_process_gets_the_events_after_the_change(
    database_url: str,
) -> None:
    here = open_gw(database_url)
    there = open_gw(database_url)
    try:
        narrow = there.webhooks.create(RECEIVER, event_types=["customer.created"])
        paused = there.webhooks.create(RECEIVER, event_types=["*"], enabled=False)
        here.groups.create("Unmatched")
        here.deliver_pending()  # this process now knows both endpoints match no group event
        assert queued(there, narrow.id) == [] and queued(there, paused.id) == []

        there.webhooks.update(narrow.id, event_types=["customer_group.*"])
        there.webhooks.update(paused.id, enabled=True)
        here.groups.create("Matched")
        here.deliver_pending()

        assert queued(there, narrow.id) == ["customer_group.created"]
        assert queued(there, paused.id) == ["customer_group.created"]
    finally:
        here.close()
        there.close()
