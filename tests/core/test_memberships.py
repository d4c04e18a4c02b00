"""Memberships: bulk, all-or-nothing, no-ops emit nothing, both sides of the relation."""

from __future__ import annotations

import pytest

from groupwire import InvalidData, NotFound


@pytest.fixture
def shop(gw):
    vip = gw.groups.create(name="VIP")
    trial = gw.groups.create(name="Trial")
    ids = [gw.customers.create(email=f"c{i}@shop.test").id for i in range(4)]
    return gw, vip, trial, ids


def test_bulk_add_emits_one_customer_added_per_new_member_in_request_order(shop):
    gw, vip, _, ids = shop
    before = gw.events.last_sequence()

    change = gw.groups.add_customers(vip.id, ids)

    assert change.added == ids
    events = gw.events.list(after=before)
    assert [e.type for e in events] == ["customer_group.customer_added"] * 4
    assert [e.data["customer_id"] for e in events] == ids
    assert all(e.data["group_id"] == vip.id and e.subject == vip.id for e in events)
    assert [e.sequence for e in events] == list(range(before + 1, before + 5))
    assert {c.id for c in gw.groups.members(vip.id)} == set(ids)


def test_adding_existing_members_is_a_no_op_that_emits_nothing(shop):
    gw, vip, _, ids = shop
    gw.groups.add_customers(vip.id, ids[:2])
    before = gw.events.last_sequence()

    change = gw.groups.add_customers(vip.id, [ids[0], ids[1], ids[1]])

    assert change.added == []
    assert gw.events.last_sequence() == before


def test_a_bulk_add_with_one_unknown_id_adds_nobody(shop):
    gw, vip, _, ids = shop
    before = gw.events.last_sequence()

    with pytest.raises(NotFound) as error:
        gw.groups.add_customers(vip.id, [ids[0], "cus_missing", ids[1]])

    assert error.value.ids == ["cus_missing"]
    assert "cus_missing" in error.value.message
    assert gw.groups.members(vip.id) == []
    assert gw.events.last_sequence() == before


def test_an_unknown_group_is_named_before_unknown_customers(shop):
    gw, _, _, ids = shop
    for customer_ids in ([ids[0]], [ids[0], "cus_missing"], []):
        with pytest.raises(NotFound) as error:
            gw.groups.add_customers("cusgroup_missing", customer_ids)
        assert error.value.ids == ["cusgroup_missing"]


def test_one_batch_adds_the_non_members_and_removes_the_members_it_names(shop):
    gw, vip, _, ids = shop
    gw.groups.add_customers(vip.id, ids[:2])
    before = gw.events.last_sequence()

    change = gw.groups.update_customers(vip.id, add=[ids[0], ids[2]], remove=[ids[1], ids[3]])

    assert (change.added, change.removed) == ([ids[2]], [ids[1]])
    assert sorted(c.id for c in gw.groups.members(vip.id)) == sorted([ids[0], ids[2]])
    assert [(e.type, e.data["customer_id"]) for e in gw.events.list(after=before)] == [
        ("customer_group.customer_added", ids[2]),
        ("customer_group.customer_removed", ids[1]),
    ]


def test_deleted_customers_cannot_join(shop):
    gw, vip, _, ids = shop
    gw.customers.delete(ids[0])
    with pytest.raises(NotFound):
        gw.groups.add_customers(vip.id, [ids[0]])


def test_removing_non_members_or_unknown_ids_is_a_no_op_for_them_as_in_medusa(shop):
    gw, vip, _, ids = shop
    gw.groups.add_customers(vip.id, [ids[0]])
    before = gw.events.last_sequence()

    change = gw.groups.remove_customers(vip.id, [ids[1], ids[2], "cus_missing"])
    assert change.removed == []
    assert gw.events.last_sequence() == before

    change = gw.groups.remove_customers(vip.id, [ids[0], "cus_missing"])
    assert change.removed == [ids[0]]
    assert gw.groups.members(vip.id) == []
    with pytest.raises(NotFound, match="customer_group_id: cusgroup_missing"):
        gw.groups.remove_customers("cusgroup_missing", [ids[0]])


def test_remove_emits_customer_removed_with_reason_removed(shop):
    gw, vip, _, ids = shop
    gw.groups.add_customers(vip.id, ids)
    before = gw.events.last_sequence()

    change = gw.groups.remove_customers(vip.id, [ids[2], ids[0]])

    assert change.removed == [ids[2], ids[0]]
    events = gw.events.list(after=before)
    assert [(e.type, e.data["customer_id"], e.data["reason"]) for e in events] == [
        ("customer_group.customer_removed", ids[2], "removed"),
        ("customer_group.customer_removed", ids[0], "removed"),
    ]


def test_add_and_remove_in_one_call_is_one_transaction(shop):
    gw, vip, _, ids = shop
    gw.groups.add_customers(vip.id, ids[:2])

    change = gw.groups.update_customers(vip.id, add=[ids[2], ids[3]], remove=[ids[0]])

    assert change.added == [ids[2], ids[3]]
    assert change.removed == [ids[0]]
    assert {c.id for c in gw.groups.members(vip.id)} == {ids[1], ids[2], ids[3]}
    with pytest.raises(InvalidData):
        gw.groups.update_customers(vip.id, add=[ids[1]], remove=[ids[1]])


def test_a_customer_joins_and_leaves_groups_from_its_own_side(shop):
    gw, vip, trial, ids = shop

    joined = gw.customers.update_groups(ids[0], add=[vip.id, trial.id])
    assert sorted(joined.added) == sorted([vip.id, trial.id])

    moved = gw.customers.set_groups(ids[0], [vip.id])
    assert moved.added == [] and moved.removed == [trial.id]
    assert [g.id for g in gw.customers.groups(ids[0])] == [vip.id]

    with pytest.raises(NotFound):
        gw.customers.update_groups(ids[0], add=["cusgroup_missing"])
    with pytest.raises(NotFound):
        gw.customers.update_groups("cus_missing", add=[vip.id])
    assert [g.id for g in gw.customers.groups(ids[0])] == [vip.id]


def test_membership_ids_must_be_a_list_of_strings(shop):
    gw, vip, _, _ = shop
    with pytest.raises(InvalidData):
        gw.groups.add_customers(vip.id, "cus_1")
    with pytest.raises(InvalidData):
        gw.groups.add_customers(vip.id, [1, 2])
