"""Re-sync after capture was blind: the store's copy catches up with Medusa, and says how.

Capture runs, stops, loses its slot; Medusa changes meanwhile (members join and leave, a
group and a customer are created, updated, deleted). ``install`` with ``resync`` compares
Medusa's state with the copy and records exactly the missing changes, once each, marked
``reason: "resync"``, then captures from a new slot. Medusa is real (the harness).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from groupwire.domain import events as ev
from groupwire.medusa import CaptureOptions, MedusaCapture
from groupwire.medusa import slot as slots
from groupwire.medusa import tables as bookkeeping
from groupwire.medusa.capture import CaptureError
from groupwire.store import repository as repo
from tests.medusa.capturing import Captured, capturing, create_group, ok, wait_until_inactive
from tests.medusa.harness import MedusaServer

pytestmark = pytest.mark.medusa


def create_customer(medusa: MedusaServer) -> str:
    body = {"email": f"{uuid.uuid4().hex[:10]}@shop.example"}
    return str(ok(medusa.client.post("/admin/customers", json=body))["customer"]["id"])


def members(medusa: MedusaServer, group_id: str, **change: list[str]) -> None:
    ok(medusa.client.post(f"/admin/customer-groups/{group_id}/customers", json=change))


def lose_the_slot(captured: Captured) -> None:
    """Capture stops, and its slot is dropped (as an operator or a full disk might)."""
    captured.capture.close()
    wait_until_inactive(captured.medusa.database_url, captured.options.slot)
    captured.sql("SELECT pg_drop_replication_slot(%s)", (captured.options.slot,))


def resync(captured: Captured) -> str:
    """Install again with ``resync``; the new capture replaces the old one."""
    options = replace(captured.options, resync=True)
    captured.capture = MedusaCapture(captured.gw.service, options)
    captured.options = options
    return captured.capture.install()


def medusa_pairs(captured: Captured) -> set[tuple[str, str]]:
    found = captured.sql(
        "SELECT DISTINCT m.customer_group_id, m.customer_id FROM customer_group_customer m"
        " JOIN customer_group g ON g.id = m.customer_group_id AND g.deleted_at IS NULL"
        " JOIN customer c ON c.id = m.customer_id AND c.deleted_at IS NULL"
        " WHERE m.deleted_at IS NULL"
    )
    return {(row[0], row[1]) for row in found}


def fold(captured: Captured) -> set[tuple[str, str]]:
    """Every customer_added / customer_removed event so far, folded in sequence order."""
    pairs: set[tuple[str, str]] = set()
    for type_, data in captured.events_since(0):
        pair = (data.get("group_id"), data.get("customer_id"))
        if type_ == ev.CUSTOMER_ADDED:
            pairs.add(pair)  # type: ignore[arg-type]
        elif type_ == ev.CUSTOMER_REMOVED:
            pairs.discard(pair)  # type: ignore[arg-type]
    return pairs


def told(events: list[tuple[str, dict[str, Any]]]) -> Counter[tuple[Any, ...]]:
    """Each event as (type, what it is about, reason), counted."""
    return Counter(
        (type_, data.get("id") or (data.get("group_id"), data.get("customer_id")), data["reason"])
        for type_, data in events
    )


def test_given_capture_blind_while_medusa_changed_when_resynced_then_each_missing_change_once(
    medusa: MedusaServer, store_url: str
) -> None:
    # given a captured Medusa (its state told as events, so that the fold is complete)
    kept, doomed = create_group(medusa)["id"], create_group(medusa)["id"]
    doubled = create_group(medusa)["id"]
    stays, leaves, quits, joins, dup = (create_customer(medusa) for _ in range(5))
    members(medusa, kept, add=[stays, leaves, quits])
    members(medusa, doomed, add=[stays])
    members(medusa, doubled, add=[dup, dup])
    with capturing(medusa, store_url, initial="events") as captured:
        captured.sync()
        assert fold(captured) == medusa_pairs(captured)

        # when capture is blind while Medusa changes
        lose_the_slot(captured)
        renamed = f"Renamed {uuid.uuid4().hex[:6]}"
        members(medusa, kept, add=[joins], remove=[leaves])
        fresh = create_group(medusa, name=f"Fresh {uuid.uuid4().hex[:6]}")["id"]
        members(medusa, fresh, add=[joins, joins])
        ok(
            medusa.client.post(
                f"/admin/customer-groups/{kept}", json={"name": renamed, "metadata": {"k": 1}}
            )
        )
        ok(medusa.client.delete(f"/admin/customer-groups/{doomed}"))
        newcomer = create_customer(medusa)
        members(medusa, doubled, add=[newcomer])
        ok(medusa.client.post(f"/admin/customers/{stays}", json={"first_name": "Ada"}))
        ok(
            medusa.client.post(
                f"/admin/customers/{stays}/addresses",
                json={"address_1": "Main 1", "city": "Aarhus", "country_code": "dk"},
            )
        )
        [(address,)] = captured.sql(
            "SELECT id FROM customer_address WHERE customer_id = %s", (stays,)
        )
        ok(medusa.client.delete(f"/admin/customers/{quits}"))
        [one_of_two] = captured.sql(
            "SELECT id FROM customer_group_customer WHERE customer_group_id = %s"
            " AND customer_id = %s ORDER BY created_at, id LIMIT 1",
            (doubled, dup),
        )
        captured.sql("DELETE FROM customer_group_customer WHERE id = %s", one_of_two)
        mark = captured.mark()

        # then capture refuses to start again without re-sync, and says how
        with pytest.raises(CaptureError, match="--resync"):
            MedusaCapture(captured.gw.service, captured.options).install()
        assert captured.mark() == mark

        # when re-synced
        assert resync(captured) == "resynced"

        # then exactly the missing changes, once each, marked as found by re-sync
        R = ev.REASON_RESYNC
        assert told(captured.events_since(mark)) == Counter(
            [
                (ev.CUSTOMER_REMOVED, (kept, leaves), R),
                (ev.CUSTOMER_REMOVED, (kept, quits), R),
                (ev.CUSTOMER_REMOVED, (doomed, stays), R),
                (ev.CUSTOMER_DELETED, quits, R),
                (ev.GROUP_DELETED, doomed, R),
                (ev.GROUP_CREATED, fresh, R),
                (ev.GROUP_UPDATED, kept, R),
                (ev.GROUP_METADATA_UPDATED, kept, R),
                (ev.CUSTOMER_CREATED, newcomer, R),
                (ev.CUSTOMER_UPDATED, stays, R),
                (ev.ADDRESS_CREATED, address, R),
                (ev.CUSTOMER_ADDED, (kept, joins), R),
                (ev.CUSTOMER_ADDED, (fresh, joins), R),
                (ev.CUSTOMER_ADDED, (doubled, newcomer), R),
            ]
        )
        assert fold(captured) == medusa_pairs(captured)
        with captured.gw.service.engine.connect() as conn:
            assert repo.all_memberships(conn) == medusa_pairs(captured)
        assert captured.gw.groups.get(kept).name == renamed

        # and capture goes on from the new slot: nothing missed, nothing doubled
        mark = captured.mark()
        members(medusa, kept, add=[leaves])
        captured.sync()
        assert [(t, d["customer_id"]) for t, d in captured.events_since(mark)] == [
            (ev.CUSTOMER_ADDED, leaves)
        ]
        assert "reason" not in captured.events_since(mark)[0][1]

        # a second re-sync (here after the position was forgotten, as `uninstall --forget`
        # does) finds nothing to tell
        lose_the_slot(captured)
        bookkeeping.forget(captured.gw.service.engine, captured.options.slot)
        mark = captured.mark()
        with pytest.raises(CaptureError, match="--resync"):
            MedusaCapture(captured.gw.service, replace(captured.options, resync=False)).install()
        assert resync(captured) == "resynced"
        assert captured.events_since(mark) == []
        assert fold(captured) == medusa_pairs(captured)

        # and the membership map was rebuilt: the last row of the doubled pair still resolves
        mark = captured.mark()
        members(medusa, doubled, remove=[dup])
        captured.sync()
        assert [(t, d["customer_id"], d["reason"]) for t, d in captured.events_since(mark)] == [
            (ev.CUSTOMER_REMOVED, dup, ev.REASON_REMOVED)
        ]


def test_given_a_store_with_a_copy_and_no_position_when_capture_starts_then_it_refuses_cleanly(
    medusa: MedusaServer, store_url: str
) -> None:
    # given a store that captured, then forgot its position and lost its slot
    create_group(medusa)
    with capturing(medusa, store_url) as captured:
        lose_the_slot(captured)
        bookkeeping.forget(captured.gw.service.engine, captured.options.slot)
        options: CaptureOptions = captured.options

        # when capture starts without re-sync: a refusal naming the recovery, no slot left
        with pytest.raises(CaptureError, match="groupwire medusa capture --resync"):
            MedusaCapture(captured.gw.service, options).install()
        with slots.connect(medusa.database_url) as conn:
            assert slots.slot_state(conn, options.slot) is None
