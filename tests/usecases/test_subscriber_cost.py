"""The built-in subscribers run in every instance, configured or not: events of groups that
asked for nothing must cost one read per batch, not one per event."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event as sa_event

from groupwire import Groupwire
from groupwire.domain.models import Event
from tests.usecases.mailbox import Mailbox


@contextmanager
def counting_statements(gw: Groupwire) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa_event.listen(gw.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa_event.remove(gw.engine, "before_cursor_execute", record)


def membership_events(gw: Groupwire, count: int) -> tuple[str, list[Event]]:
    group = gw.groups.create("Quiet")
    customers = [gw.customers.create(f"c{n}@example.com") for n in range(count)]
    gw.groups.add_customers(group.id, [c.id for c in customers])
    gw.groups.remove_customers(group.id, [c.id for c in customers[: count // 2]])
    events = gw.events.list(subject=group.id, limit=None)
    return group.id, [e for e in events if e.type.startswith("customer_group.customer_")]


def reads_for(
    gw: Groupwire, handler: Callable[[Sequence[Event]], None], events: list[Event]
) -> int:
    with counting_statements(gw) as statements:
        handler(events)
    return len([s for s in statements if s.lstrip().upper().startswith("SELECT")])


def test_a_batch_of_joins_to_a_group_without_a_welcome_email_costs_one_read(
    gw: Groupwire, mailbox: Mailbox
) -> None:
    _, events = membership_events(gw, 40)
    assert len(events) == 60
    assert reads_for(gw, gw.mail.handle_events, events) == 1
    assert mailbox.received == []


def test_a_batch_of_events_of_a_group_without_rules_costs_one_read(
    gw: Groupwire, mailbox: Mailbox
) -> None:
    other = gw.groups.create("Watched")
    gw.notifications.create(other.id, emails=["rep@shop.example"])  # another group's rule
    _, events = membership_events(gw, 40)
    assert reads_for(gw, gw.notifications.handle_events, events) == 1
    assert mailbox.received == []


def test_a_batch_with_one_welcoming_group_mails_only_its_joiners(
    gw: Groupwire, mailbox: Mailbox
) -> None:
    _, quiet = membership_events(gw, 10)
    welcoming = gw.groups.create("Welcoming")
    gw.mail.set(welcoming.id, subject="Welcome", body="Hello {{ customer.email }}")
    jane = gw.customers.create("jane@example.com")
    gw.groups.add_customers(welcoming.id, [jane.id])
    [joined] = gw.events.list(type="customer_group.customer_added", subject=welcoming.id)

    gw.mail.handle_events([*quiet, joined])

    assert [m.rcpt_tos for m in mailbox.received] == [["jane@example.com"]]
