"""Customer groups: every change writes its events, exactly as the contract says."""

from __future__ import annotations

import pytest

from groupwire import Context, Duplicate, InvalidData, NotFound, PreconditionFailed


def types_of(gw, **filters):
    return [e.type for e in gw.events.list(**filters)]


def test_creating_a_group_stores_it_and_emits_created(gw):
    group = gw.groups.create(name="VIP", description="Best", metadata={"tier": 1})

    assert group.id.startswith("cusgroup_")
    assert gw.groups.get(group.id) == group
    [event] = gw.events.list()
    assert event.type == "customer_group.created"
    assert event.subject == group.id
    assert event.data == {
        "id": group.id,
        "name": "VIP",
        "description": "Best",
        "metadata": {"tier": 1},
    }


def test_event_envelope_carries_cloudevents_attributes_actor_and_correlation(gw):
    gw.groups.create(name="VIP", context=Context(actor="apikey_1", correlation_id="req-7"))

    envelope = gw.events.list()[0].envelope()

    assert envelope["specversion"] == "1.0"
    assert envelope["source"] == "groupwire"
    assert envelope["id"].startswith("evt_")
    assert envelope["time"].endswith("Z")
    assert envelope["sequence"] == 1
    assert envelope["actor"] == "apikey_1"
    assert envelope["correlation_id"] == "req-7"


def test_duplicate_live_name_is_refused_and_writes_nothing(gw):
    gw.groups.create(name="VIP")

    with pytest.raises(Duplicate) as error:
        gw.groups.create(name="VIP")

    assert "VIP" in error.value.message
    assert gw.groups.list().count == 1
    assert types_of(gw) == ["customer_group.created"]


def test_a_deleted_groups_name_can_be_taken_again(gw):
    old = gw.groups.create(name="VIP")
    gw.groups.delete(old.id)

    new = gw.groups.create(name="VIP")

    assert new.id != old.id
    with pytest.raises(NotFound):
        gw.groups.get(old.id)


@pytest.mark.parametrize("name", ["", "   ", None, 7, "x" * 256])
def test_invalid_names_are_refused(gw, name):
    with pytest.raises(InvalidData):
        gw.groups.create(name=name)
    assert gw.events.list() == []


def test_update_emits_changed_fields_with_old_and_new_values(gw):
    group = gw.groups.create(name="VIP", description="a")

    updated = gw.groups.update(group.id, name="Gold", description="a")

    assert updated.name == "Gold"
    assert updated.version == group.version + 1
    event = gw.events.list(type="customer_group.updated")[0]
    assert event.data == {"id": group.id, "changes": {"name": {"old": "VIP", "new": "Gold"}}}


def test_update_with_equal_values_is_a_no_op_that_emits_nothing(gw):
    group = gw.groups.create(name="VIP", metadata={"a": 1})

    same = gw.groups.update(group.id, name="VIP", metadata={"a": 1})

    assert same.version == group.version
    assert types_of(gw) == ["customer_group.created"]


def test_metadata_update_merges_keys_removes_empty_ones_and_emits_the_key_diff(gw):
    group = gw.groups.create(name="VIP", metadata={"keep": 1, "change": "x", "drop": True})

    updated = gw.groups.update(group.id, metadata={"change": "y", "drop": "", "new": [1]})

    assert updated.metadata == {"keep": 1, "change": "y", "new": [1]}
    assert types_of(gw) == [
        "customer_group.created",
        "customer_group.updated",
        "customer_group.metadata_updated",
    ]
    diff = gw.events.list(type="customer_group.metadata_updated")[0].data
    assert diff == {
        "id": group.id,
        "added": {"new": [1]},
        "changed": {"change": {"old": "x", "new": "y"}},
        "removed": ["drop"],
    }
    assert gw.groups.get(group.id).metadata == updated.metadata


def test_renaming_to_a_taken_name_is_refused(gw):
    gw.groups.create(name="VIP")
    trial = gw.groups.create(name="Trial")

    with pytest.raises(Duplicate):
        gw.groups.update(trial.id, name="VIP")

    assert gw.groups.get(trial.id).name == "Trial"


def test_stale_expected_version_is_refused(gw):
    group = gw.groups.create(name="VIP")
    gw.groups.update(group.id, name="Gold")

    with pytest.raises(PreconditionFailed):
        gw.groups.update(group.id, name="Platinum", expected_version=group.version)
    with pytest.raises(PreconditionFailed):
        gw.groups.delete(group.id, expected_version=group.version)

    assert gw.groups.get(group.id).name == "Gold"


def test_unknown_group_ids_raise_not_found_naming_the_id(gw):
    for call in (
        lambda: gw.groups.get("cusgroup_nope"),
        lambda: gw.groups.update("cusgroup_nope", name="x"),
        lambda: gw.groups.delete("cusgroup_nope"),
        lambda: gw.groups.add_customers("cusgroup_nope", []),
    ):
        with pytest.raises(NotFound) as error:
            call()
        assert "cusgroup_nope" in error.value.message


def test_deleting_a_group_removes_each_member_then_emits_deleted(gw):
    group = gw.groups.create(name="VIP")
    ids = [gw.customers.create(email=f"c{i}@shop.test").id for i in range(3)]
    gw.groups.add_customers(group.id, ids)
    before = gw.events.last_sequence()

    gw.groups.delete(group.id)

    events = gw.events.list(subject=group.id, after=before)
    assert [e.type for e in events] == ["customer_group.customer_removed"] * 3 + [
        "customer_group.deleted"
    ]
    assert [e.data["customer_id"] for e in events[:3]] == ids
    assert {e.data["reason"] for e in events[:3]} == {"group_deleted"}
    assert events[-1].data == {"id": group.id, "name": "VIP", "member_count": 3}
    assert gw.customers.groups(ids[0]) == []


def test_listing_filters_searches_orders_and_pages(gw):
    for name in ["Alpha", "Beta", "Gamma", "Alphabet"]:
        gw.groups.create(name=name, description=f"{name} group")

    assert [g.name for g in gw.groups.list(q="alpha").items] == ["Alpha", "Alphabet"]
    page = gw.groups.list(order="-name", limit=2, offset=1)
    assert [g.name for g in page.items] == ["Beta", "Alphabet"]
    assert page.count == 4
    assert [g.name for g in gw.groups.list(names=["Beta"]).items] == ["Beta"]


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "nul\x00byte"},
        {"name": "lone \ud800 surrogate"},
        {"name": "ok", "description": "nul\x00"},
        {"name": "ok", "metadata": {"k": "nul\x00"}},
        {"name": "ok", "metadata": {"nul\x00key": 1}},
        {"name": "ok", "metadata": {"k": float("nan")}},
        {"name": "ok", "metadata": {"k": {1, 2}}},
        {"name": "ok", "metadata": {1: "non-string key"}},
    ],
)
def test_text_no_database_can_store_is_refused_as_invalid_data(gw, fields):
    with pytest.raises(InvalidData):
        gw.groups.create(**fields)
    assert gw.groups.list().count == 0
    assert gw.events.list() == []
