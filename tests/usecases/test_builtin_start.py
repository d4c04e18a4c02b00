"""The built-in subscribers with the in-process relay: a webhook endpoint, a welcome email and
a notification rule get every matching event committed after their creation, whenever the
subscribers first register and start, and a restart delivers nothing twice.

(The same with Redis Streams workers: tests/scale/test_builtin_start.py.)
"""

from __future__ import annotations

from sqlalchemy import delete, func, select

from groupwire import Groupwire
from groupwire.domain.models import Event
from groupwire.events import checkpoints
from groupwire.events.registry import Subscription
from groupwire.mail.tables import welcome_email
from groupwire.store import tables
from groupwire.webhooks.tables import webhook_endpoint, webhook_message
from tests.usecases.conftest import open_gw
from tests.usecases.history import ADDED, append_events
from tests.usecases.mailbox import SmtpServer
from tests.webhooks.receivers import Receiver

BUILTINS = ("groupwire.webhooks", "groupwire.mail.welcome", "groupwire.notify")
SALES = "sales@shop.example"


def configure(gw: Groupwire, url: str) -> str:
    """Some history nobody is owed, then an endpoint, a welcome email and a rule on "VIP"."""
    old = gw.groups.create("Old")
    gw.groups.add_customers(old.id, [gw.customers.create("old@example.com").id])
    vip = gw.groups.create("VIP")
    gw.webhooks.create(url, event_types=[ADDED])
    gw.mail.set(vip.id, subject="Welcome {{ customer.email }}", body="Hello")
    gw.notifications.create(vip.id, emails=[SALES])
    return vip.id


def join(gw: Groupwire, group_id: str, names: list[str]) -> None:
    ids = [gw.customers.create(f"{name}@example.com").id for name in names]
    gw.groups.add_customers(group_id, ids)


def delivered(receiver: Receiver, smtp: SmtpServer) -> dict[str, list[str]]:
    """Who was welcomed, notified of and posted, each a sorted list (duplicates kept)."""
    mails = list(smtp.mailbox.received)
    welcomed = [m.rcpt_tos[0] for m in mails if m.subject.startswith("Welcome")]
    notified = [m.subject.split(" ")[0] for m in mails if m.rcpt_tos == [SALES]]
    posted = [r.json["data"]["customer_id"] for r in list(receiver.received)]
    return {"welcomed": sorted(welcomed), "notified": sorted(notified), "posted": posted}


def wait_for_all(gw: Groupwire, receiver: Receiver, smtp: SmtpServer, joins: int) -> None:
    assert gw.drain(60), "the subscribers caught up"
    assert smtp.mailbox.wait_for(2 * joins, 30), f"{len(smtp.mailbox.received)} mails"
    assert receiver.wait_for(joins, 30), f"{len(receiver.received)} webhook posts"


def message_count(gw: Groupwire) -> int:
    with gw.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(webhook_message)).scalar_one())


def test_given_an_endpoint_an_email_and_a_rule_and_joins_committed_before_gw_start_when_it_starts_then_each_join_is_delivered_once(  # noqa: E501
    database_url: str,
) -> None:
    with SmtpServer() as smtp, Receiver() as receiver:
        gw = open_gw(database_url, smtp.port, webhooks_dispatch=True)
        try:
            vip = configure(gw, receiver.url)
            join(gw, vip, ["ann", "bob", "cy"])
            gw.start()
            wait_for_all(gw, receiver, smtp, 3)
            assert message_count(gw) == 3
            got = delivered(receiver, smtp)
        finally:
            gw.close()
    emails = sorted(f"{n}@example.com" for n in ["ann", "bob", "cy"])
    assert got["welcomed"] == got["notified"] == emails
    assert len(got["posted"]) == 3 == len(set(got["posted"]))


def test_given_joins_committed_before_the_built_in_subscribers_first_register_when_they_start_then_every_join_since_the_configuration_is_delivered_and_a_restart_redelivers_none(  # noqa: E501
    database_url: str,
) -> None:
    with SmtpServer() as smtp, Receiver() as receiver:
        # given an endpoint, an email and a rule, then 3 joins, committed by a process that
        # never delivered, on a store whose built-in subscribers have no progress (as one
        # restored without it, or written before they existed): their first registration
        # comes after the joins
        first = open_gw(database_url, smtp.port, webhooks_dispatch=True)
        vip = configure(first, receiver.url)
        join(first, vip, ["ann", "bob", "cy"])
        with first.engine.begin() as conn:
            table = tables.subscriber_checkpoint
            conn.execute(delete(table).where(table.c.subscriber.in_(BUILTINS)))
        first.close()

        # when a process registers and starts them
        second = open_gw(database_url, smtp.port, webhooks_dispatch=True)
        try:
            second.start()
            # then every join since the configuration is delivered, and nothing older
            wait_for_all(second, receiver, smtp, 3)
        finally:
            second.close()

        # and after a restart and one more join, only that join is delivered
        third = open_gw(database_url, smtp.port, webhooks_dispatch=True)
        try:
            join(third, vip, ["dee"])
            third.start()
            wait_for_all(third, receiver, smtp, 4)
            assert message_count(third) == 4
            got = delivered(receiver, smtp)
        finally:
            third.close()
    emails = sorted(f"{n}@example.com" for n in ["ann", "bob", "cy", "dee"])
    assert got["welcomed"] == got["notified"] == emails
    assert len(got["posted"]) == 4 == len(set(got["posted"]))


def test_a_brand_new_built_in_subscriber_starts_at_the_lowest_start_of_what_it_serves_or_at_the_end_of_a_long_history(  # noqa: E501
    gw: Groupwire,
) -> None:
    """Its first start costs nothing on a long history nobody is owed, and never skips what
    an endpoint or an email is owed."""
    group = gw.groups.create("Big")
    append_events(gw.engine, [(ADDED, group.id, f"cus_{n}", group.created_at) for n in range(3000)])
    end = gw.events.last_sequence()

    def fresh(name: str, column) -> int:
        start = checkpoints.since_lowest(column)
        return checkpoints.load(gw.engine, Subscription(name, ("*",), _ignore, start=start))

    assert fresh("no.endpoint", webhook_endpoint.c.start_sequence) == end
    endpoint = gw.webhooks.create("http://127.0.0.1:9/hook")
    gw.groups.create("After")
    gw.mail.set(group.id, subject="Hi", body="Hello")
    with gw.engine.connect() as conn:
        starts = conn.execute(select(webhook_endpoint.c.start_sequence)).scalars().all()
        email_start = conn.execute(select(welcome_email.c.start_sequence)).scalar_one()
    assert starts == [end]
    assert fresh("one.endpoint", webhook_endpoint.c.start_sequence) == end
    assert fresh("one.email", welcome_email.c.start_sequence) == email_start == end + 1
    gw.webhooks.delete(endpoint.id)  # nothing left to serve: from the end again
    assert fresh("no.endpoint.left", webhook_endpoint.c.start_sequence) == gw.events.last_sequence()
    # and a subscriber that has progress keeps it
    assert fresh("no.endpoint", webhook_endpoint.c.start_sequence) == end


def _ignore(_event: Event) -> None:
    pass
