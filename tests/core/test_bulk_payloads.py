"""Bulk membership events format their JSON from one template: the text must be exactly what
``json.dumps`` makes of the payload, whatever the ids contain."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from groupwire.domain import events as ev
from groupwire.domain.events import PendingEvent

ids = st.text(min_size=1, max_size=40)
AT = datetime(2026, 11, 25, 8, 30, 0, 123456, tzinfo=UTC)


@given(group_id=ids, customer_ids=st.lists(ids, max_size=5))
def test_customers_added_json_is_what_json_dumps_makes_of_the_payload(
    group_id: str, customer_ids: list[str]
) -> None:
    for event, customer_id in zip(
        ev.customers_added(group_id, customer_ids, AT), customer_ids, strict=True
    ):
        payload = {
            "group_id": group_id,
            "customer_id": customer_id,
            "timestamp": "2026-11-25T08:30:00.123456Z",
        }
        assert event.encoded == json.dumps(payload)
        assert event.data == payload
        assert (event.type, event.subject, event.partition) == (
            ev.CUSTOMER_ADDED,
            group_id,
            group_id,
        )


@given(group_id=ids, customer_ids=st.lists(ids, max_size=5), reason=ids)
def test_customers_removed_json_is_what_json_dumps_makes_of_the_payload(
    group_id: str, customer_ids: list[str], reason: str
) -> None:
    for event, customer_id in zip(
        ev.customers_removed(group_id, customer_ids, AT, reason), customer_ids, strict=True
    ):
        payload = {
            "group_id": group_id,
            "customer_id": customer_id,
            "timestamp": "2026-11-25T08:30:00.123456Z",
            "reason": reason,
        }
        assert event.encoded == json.dumps(payload)
        assert event.data == payload


def test_a_pending_event_takes_its_data_or_its_json_not_both_nor_neither() -> None:
    with pytest.raises(TypeError):
        PendingEvent("t", "s", "p")
    with pytest.raises(TypeError):
        PendingEvent("t", "s", "p", {"a": 1}, encoded='{"a": 1}')
    assert PendingEvent("t", "s", "p", encoded='{"a": 1}') == PendingEvent("t", "s", "p", {"a": 1})
