"""The background dispatcher (``gw.start()``): isolation between endpoints, and restarts."""

from __future__ import annotations

from groupwire import Groupwire
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
