"""The background dispatcher (``gw.start()``): isolation between endpoints, and restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import func, select

from groupwire import Groupwire
from groupwire.webhooks.tables import webhook_message
from tests.webhooks.conftest import open_gw
from tests.webhooks.receivers import Receiver, wait_until


def test_a_hanging_receiver_does_not_hold_up_another_receivers_deliveries(
    gw: Groupwire,
) -> None:
    with Receiver(hang=True) as hanging, Receiver() as healthy:
        gw.webhooks.create(hanging.url)
        gw.webhooks.create(healthy.url)
        gw.start()
        groups = [gw.groups.create(f"Group {n}") for n in range(30)]

        assert healthy.wait_for(30), f"only {len(healthy.received)} of 30 arrived"
        assert sorted(r.json["data"]["id"] for r in healthy.received) == sorted(
            g.id for g in groups
        )
        assert wait_until(lambda: hanging.hanging == gw.settings.webhooks_endpoint_concurrency)
        assert hanging.received == [], "the hanging receiver has answered nothing yet"
        hanging.released.set()


def test_every_committed_event_reaches_the_receiver_across_a_worker_restart(
    database_url: str,
) -> None:
    with Receiver(delay=0.01) as receiver:
        first = open_gw(database_url)
        endpoint = first.webhooks.create(receiver.url, event_types=["customer_group.*"])
        first.start()
        committed = [first.groups.create(f"Before {n}").id for n in range(40)]
        receiver.wait_for(5)
        first.close()  # stops mid-stream: some messages are queued, some in flight

        second = open_gw(database_url)
        try:
            committed += [second.groups.create(f"While down {n}").id for n in range(20)]
            second.customers.create("no-match@example.com")  # not a group event
            second.start()
            committed += [second.groups.create(f"After {n}").id for n in range(20)]

            assert wait_until(lambda: set(_group_ids(receiver)) >= set(committed), 60)
            assert set(_group_ids(receiver)) == set(committed)
            assert all(r.json["type"] == "customer_group.created" for r in receiver.received)
            messages = second.webhooks.messages(endpoint.id, limit=1000)
            assert messages.count == len(committed)
            assert wait_until(
                lambda: (
                    second.webhooks.messages(endpoint.id, status="succeeded").count
                    == len(committed)
                )
            )
        finally:
            second.close()


def _group_ids(receiver: Receiver) -> list[str]:
    return [r.json["data"]["id"] for r in list(receiver.received)]


def test_while_another_writer_holds_sqlites_lock_the_dispatcher_keeps_serving_responses(
    tmp_path: Path,
) -> None:
    """The dispatcher claims and records on its event loop; when SQLite's write lock is taken
    it waits for the lock in a worker thread, so responses still in flight are handled."""
    path = tmp_path / "locked.db"
    gw = open_gw(f"sqlite:///{path}")
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        with Receiver(delay=0.3) as quick, Receiver(delay=1.5) as slow:
            quick_endpoint = gw.webhooks.create(quick.url)
            slow_endpoint = gw.webhooks.create(slow.url)
            gw.groups.create("Locked out")
            gw.deliver_pending()
            gw.webhooks.start()
            assert wait_until(lambda: _claimed(gw) == 2, timeout=10)

            blocker.execute("BEGIN IMMEDIATE")  # now nobody else can write
            stats = gw.webhooks.dispatcher.stats
            # The quick answer's outcome is waiting for the lock; the slow answer still arrives
            # and is handled by the loop meanwhile.
            assert wait_until(lambda: stats.succeeded == 2, timeout=5), stats
            assert _claimed(gw) == 2, "nothing could be recorded while the lock was held"
            blocker.execute("ROLLBACK")

            for endpoint in (quick_endpoint, slow_endpoint):
                assert wait_until(
                    lambda endpoint=endpoint: (
                        [m.status for m in gw.webhooks.messages(endpoint.id).items] == ["succeeded"]
                    ),
                    timeout=10,
                )
            assert len(quick.received) == len(slow.received) == 1
    finally:
        blocker.close()
        gw.close()


def _claimed(gw: Groupwire) -> int:
    with gw.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(webhook_message.c.claimed_by.is_not(None))
            ).scalar_one()
        )
