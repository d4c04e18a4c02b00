"""Retention of the delivery log: finished messages and their attempts go once the retention
period (``webhooks_retention_days``, 30 by default) has passed since their last change; what
is still to be sent, or still holds later messages back, stays."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Table, func, select

from groupwire import Groupwire
from groupwire.domain.errors import InvalidData
from groupwire.webhooks import ManualClock
from groupwire.webhooks.tables import webhook_attempt, webhook_message
from tests.webhooks.conftest import open_gw
from tests.webhooks.receivers import Receiver, wait_until
from tests.webhooks.test_cli import run

RETENTION = timedelta(days=30)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def gw(database_url: str, clock: ManualClock) -> Iterator[Groupwire]:
    """One attempt per message (a failure is final at once), on a clock the test moves."""
    instance = open_gw(database_url, webhooks_retry_schedule=[0])
    instance.webhooks.clock = clock
    yield instance
    instance.close()


def deliver(gw: Groupwire) -> int:
    gw.deliver_pending()
    return gw.webhooks.deliver_due()


def count(gw: Groupwire, table: Table) -> int:
    with gw.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def statuses(gw: Groupwire, endpoint_id: str) -> list[str]:
    return sorted(m.status for m in gw.webhooks.messages(endpoint_id, limit=1000).items)


def test_given_succeeded_and_failed_messages_past_the_retention_when_pruning_then_they_and_their_attempts_are_gone(  # noqa: E501
    gw: Groupwire, clock: ManualClock
) -> None:
    with Receiver() as healthy, Receiver(status=500) as broken:
        ok = gw.webhooks.create(healthy.url)
        failing = gw.webhooks.create(broken.url)
        gw.groups.create("Old news")
        assert deliver(gw) == 2
        assert statuses(gw, ok.id) == ["succeeded"] and statuses(gw, failing.id) == ["failed"]
        assert count(gw, webhook_attempt) == 2

        clock.advance(days=30, seconds=1)
        assert gw.webhooks.prune() == 2

        assert count(gw, webhook_message) == 0
        assert count(gw, webhook_attempt) == 0
        assert gw.webhooks.attempts(ok.id).count == gw.webhooks.attempts(failing.id).count == 0


def test_given_a_finished_message_when_the_retention_period_has_not_quite_passed_then_it_is_kept(
    gw: Groupwire, clock: ManualClock
) -> None:
    with Receiver() as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        gw.groups.create("Recent")
        deliver(gw)
        [message] = gw.webhooks.messages(endpoint.id).items

        assert gw.webhooks.prune(now=message.updated_at + RETENTION) == 0
        assert statuses(gw, endpoint.id) == ["succeeded"]
        assert gw.webhooks.attempts(endpoint.id).count == 1

        assert gw.webhooks.prune(now=message.updated_at + RETENTION + timedelta(seconds=1)) == 1
        assert statuses(gw, endpoint.id) == []


def test_given_an_old_message_resent_recently_when_pruning_then_it_is_kept_because_the_retention_counts_from_the_last_change(  # noqa: E501
    gw: Groupwire, clock: ManualClock
) -> None:
    with Receiver(statuses=[500]) as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        gw.groups.create("Failed long ago")
        deliver(gw)
        [failed] = gw.webhooks.messages(endpoint.id).items
        assert failed.status == "failed"

        clock.advance(days=40)
        gw.webhooks.resend(endpoint.id, failed.id)
        assert gw.webhooks.deliver_due() == 1
        clock.advance(days=10)

        assert gw.webhooks.prune() == 0
        assert statuses(gw, endpoint.id) == ["succeeded"]
        assert gw.webhooks.attempts(endpoint.id).count == 2


def test_given_pending_messages_however_old_when_pruning_then_they_are_kept(
    database_url: str, clock: ManualClock
) -> None:
    gw = open_gw(database_url, webhooks_retry_schedule=[0, 365 * 86400])
    gw.webhooks.clock = clock
    try:
        with Receiver(status=500) as receiver:
            retrying = gw.webhooks.create(receiver.url)
            gw.groups.create("Retried next year")
            deliver(gw)  # failed once, next attempt in a year
            paused = gw.webhooks.create(receiver.url)
            gw.groups.create("Never sent")
            gw.deliver_pending()
            gw.webhooks.update(paused.id, enabled=False)  # its message waits, unsent

            clock.advance(days=300)
            assert gw.webhooks.prune() == 0

            assert statuses(gw, retrying.id) == ["pending", "pending"]
            assert statuses(gw, paused.id) == ["pending"]
            assert gw.webhooks.attempts(retrying.id).count == 1
    finally:
        gw.close()


def test_given_an_ordered_endpoint_with_a_failed_message_when_pruning_then_it_is_kept_and_still_holds_its_group_back(  # noqa: E501
    gw: Groupwire, clock: ManualClock
) -> None:
    with Receiver(statuses=[500]) as receiver:
        endpoint = gw.webhooks.create(receiver.url, ordered=True)
        held = gw.groups.create("Fails first")
        assert deliver(gw) == 1
        gw.groups.create("Another group")
        gw.groups.update(held.id, description="waits behind the failed event")
        assert deliver(gw) == 1, "only the other group's event goes"

        clock.advance(days=31)
        assert gw.webhooks.prune() == 1, "the other group's succeeded message goes"

        assert statuses(gw, endpoint.id) == ["failed", "pending"]
        assert gw.webhooks.deliver_due() == 0, "the later event still waits"
        [failed] = gw.webhooks.messages(endpoint.id, status="failed").items
        gw.webhooks.resend(endpoint.id, failed.id)
        assert gw.webhooks.deliver_due() == 2
        assert [r.json["type"] for r in receiver.received[-2:]] == [
            "customer_group.created",
            "customer_group.updated",
        ]

        clock.advance(days=31)
        assert gw.webhooks.prune() == 2
        assert statuses(gw, endpoint.id) == []


def test_given_more_expired_messages_than_a_batch_when_pruning_then_every_batch_is_deleted(
    gw: Groupwire, clock: ManualClock
) -> None:
    with Receiver() as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        for n in range(7):
            gw.groups.create(f"Group {n}")
        assert deliver(gw) == 7
        clock.advance(days=31)
        gw.groups.create("Still fresh")
        deliver(gw)

        assert gw.webhooks.prune(batch=2) == 7

        [kept] = gw.webhooks.messages(endpoint.id).items
        assert kept.updated_at == clock.now()
        assert count(gw, webhook_attempt) == 1
        assert gw.webhooks.prune(batch=2) == 0


def test_pruning_refuses_a_batch_or_an_age_it_cannot_use(gw: Groupwire) -> None:
    for bad in ({"batch": 0}, {"batch": 10**6}, {"older_than": timedelta(0)}):
        with pytest.raises(InvalidData):
            gw.webhooks.prune(**bad)
    with pytest.raises(InvalidData):
        gw.webhooks.prune(now=datetime(2026, 1, 1))  # no time zone


def test_the_prune_command_removes_old_finished_messages_and_says_how_many(
    database_url: str,
) -> None:
    db = ["--db", database_url]
    gw = open_gw(database_url)
    gw.webhooks.clock = ManualClock(datetime.now(UTC) - timedelta(days=40))
    try:
        with Receiver() as receiver:
            endpoint = gw.webhooks.create(receiver.url)
            gw.groups.create("Delivered 40 days ago")
            deliver(gw)
    finally:
        gw.close()

    kept = run("webhooks", "prune", "--older-than", "45", *db)
    assert kept.exit_code == 0, kept.output
    assert "Removed 0 finished webhook messages" in kept.stdout
    assert "more than 45 days ago" in kept.stdout

    pruned = run("webhooks", "prune", *db)  # the default retention: 30 days
    assert pruned.exit_code == 0, pruned.output
    assert "Removed 1 finished webhook messages" in pruned.stdout
    assert "more than 30 days ago" in pruned.stdout
    assert run("webhooks", "messages", endpoint.id, "--json", *db).stdout == ""

    for bad in ("0", "-1", "nan", "100000"):
        refused = run("webhooks", "prune", "--older-than", bad, *db)
        assert refused.exit_code == 2, (bad, refused.output)


def test_given_a_running_dispatcher_when_finished_messages_pass_the_retention_then_it_prunes_them_and_goes_on_sending(  # noqa: E501
    database_url: str, clock: ManualClock
) -> None:
    gw = open_gw(database_url, webhooks_prune_interval=0.05)
    gw.webhooks.clock = clock
    try:
        with Receiver() as receiver:
            endpoint = gw.webhooks.create(receiver.url, event_types=["customer_group.created"])
            paused = gw.webhooks.create(receiver.url, event_types=["customer_group.updated"])
            group = gw.groups.create("Sent long ago")
            deliver(gw)
            gw.groups.update(group.id, description="queued for the paused endpoint")
            gw.deliver_pending()
            gw.webhooks.update(paused.id, enabled=False)
            sent = len(receiver.received)
            assert statuses(gw, endpoint.id) == ["succeeded"]
            assert statuses(gw, paused.id) == ["pending"]

            clock.advance(days=31)
            gw.webhooks.start()

            assert wait_until(lambda: statuses(gw, endpoint.id) == [], 10)
            assert statuses(gw, paused.id) == ["pending"]
            gw.groups.create("Sent today")
            gw.deliver_pending()
            assert receiver.wait_for(sent + 1, 10)
            assert wait_until(lambda: statuses(gw, endpoint.id) == ["succeeded"], 10)
            assert gw.webhooks.dispatcher.running
    finally:
        gw.close()
