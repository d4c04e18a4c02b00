"""Idempotency keys in the library: ``Context(idempotency_key=...)`` makes a change happen once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from groupwire import (
    AlreadyApplied,
    Context,
    Groupwire,
    HookRejected,
    IdempotencyKeyReused,
    hookimpl,
)
from groupwire.store import tables


def event_types(gw: Groupwire) -> list[str]:
    return [e.type for e in gw.events.list(limit=None)]


def stored_keys(gw: Groupwire) -> int:
    with gw.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.idempotency_key)).scalar())


def test_a_change_repeated_with_its_key_raises_already_applied_and_writes_nothing(gw):
    context = Context(actor="importer", idempotency_key="row-1")
    group = gw.groups.create("VIP", context=context)
    ada = gw.customers.create("ada@shop.test")
    gw.groups.add_customers(group.id, [ada.id], context=Context(idempotency_key="add-1"))
    gw.groups.remove_customers(group.id, [ada.id])

    with pytest.raises(AlreadyApplied):
        gw.groups.create("VIP", context=context)
    with pytest.raises(AlreadyApplied):
        gw.groups.add_customers(group.id, [ada.id], context=Context(idempotency_key="add-1"))

    assert gw.groups.list().count == 1
    assert gw.groups.members(group.id) == []
    assert event_types(gw).count("customer_group.customer_added") == 1
    assert event_types(gw).count("customer_group.created") == 1


def test_a_key_reused_for_another_change_raises_key_reused_and_writes_nothing(gw):
    gw.groups.create("VIP", context=Context(idempotency_key="k"))

    with pytest.raises(IdempotencyKeyReused):
        gw.groups.create("Trial", context=Context(idempotency_key="k"))
    with pytest.raises(IdempotencyKeyReused):
        gw.customers.create("ada@shop.test", context=Context(idempotency_key="k"))

    assert [g.name for g in gw.groups.list().items] == ["VIP"]
    assert gw.customers.list().count == 0


def test_keys_are_scoped_by_actor(gw):
    gw.groups.create("VIP", context=Context(actor="a", idempotency_key="k"))
    gw.groups.create("Trial", context=Context(actor="b", idempotency_key="k"))

    assert gw.groups.list().count == 2


def test_a_no_op_change_uses_up_its_key(gw):
    group = gw.groups.create("VIP")
    gw.groups.update(group.id, name="VIP", context=Context(idempotency_key="k"))
    gw.groups.update(group.id, name="Gold")

    with pytest.raises(AlreadyApplied):
        gw.groups.update(group.id, name="VIP", context=Context(idempotency_key="k"))

    assert gw.groups.get(group.id).name == "Gold"


class RefuseOnce:
    def __init__(self) -> None:
        self.refused = False

    @hookimpl
    def before_create_customer_group(self, draft, context):
        if not self.refused:
            self.refused = True
            raise HookRejected("not yet")


def test_a_failed_change_leaves_its_key_free_for_the_retry(gw):
    gw.register(RefuseOnce())

    with pytest.raises(HookRejected):
        gw.groups.create("VIP", context=Context(idempotency_key="k"))
    assert stored_keys(gw) == 0
    group = gw.groups.create("VIP", context=Context(idempotency_key="k"))

    assert gw.groups.list().items == [group]


def test_an_expired_key_is_ignored_and_pruned(database_url):
    with Groupwire.open(database_url, load_entry_points=False, idempotency_key_ttl=1e-6) as gw:
        group = gw.groups.create("VIP")
        ada = gw.customers.create("ada@shop.test")
        gw.groups.add_customers(group.id, [ada.id], context=Context(idempotency_key="k"))
        gw.groups.remove_customers(group.id, [ada.id])

        gw.groups.add_customers(group.id, [ada.id], context=Context(idempotency_key="k"))

        assert [c.id for c in gw.groups.members(group.id)] == [ada.id]
        assert event_types(gw).count("customer_group.customer_added") == 2
        assert stored_keys(gw) == 0
