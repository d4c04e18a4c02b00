"""Smart groups: members follow the rule in the transaction of each cause, with events that
say why, before-hooks that may veto (recorded), and no manual changes."""

from __future__ import annotations

import pytest

from groupwire import Groupwire, HookRejected, InvalidData, NotAllowed, hookimpl

ADDED = "customer_group.customer_added"
REMOVED = "customer_group.customer_removed"
VETOED = "customer_group.rule_vetoed"


def member_emails(gw: Groupwire, group_id: str) -> list[str]:
    return sorted(c.email or "" for c in gw.groups.members(group_id))


def membership_events(gw: Groupwire, group_id: str) -> list[tuple[str, str, str | None]]:
    return [
        (e.type, e.data["customer_id"], e.data.get("trigger"))
        for e in gw.events.list(subject=group_id, limit=None)
        if e.type in (ADDED, REMOVED)
    ]


def test_vip_follows_orders_placed_and_canceled_in_their_own_transaction(gw):
    ada = gw.customers.create("ada@shop.test")
    vip = gw.groups.create("VIP", rule={"orders.total": {"currency": "eur", "$gte": 1000}})

    gw.orders.record("o1", customer_id=ada.id, currency_code="eur", total=600)
    assert member_emails(gw, vip.id) == []
    gw.orders.record("o2", customer_id=ada.id, currency_code="eur", total=400)
    assert member_emails(gw, vip.id) == ["ada@shop.test"]
    gw.orders.record("o2", status="canceled")
    assert member_emails(gw, vip.id) == []

    assert membership_events(gw, vip.id) == [
        (ADDED, ada.id, "order_placed"),
        (REMOVED, ada.id, "order_canceled"),
    ]
    [added] = [e for e in gw.events.list(subject=vip.id, limit=None) if e.type == ADDED]
    assert added.data["reason"] == "rule" and added.data["rule_version"] == 1
    # the join committed with the order: its event directly follows order.recorded
    before = gw.events.list(after=added.sequence - 2, limit=1)[0]
    assert before.type == "order.recorded" and before.data["id"] == "o2"


def test_a_rule_set_on_a_group_applies_to_everyone_and_null_makes_it_manual(gw):
    ada = gw.customers.create("ada@shop.test", first_name="Ada")
    gw.customers.create("bob@shop.test", first_name="Bob")
    group = gw.groups.create("Adas")

    updated = gw.groups.update(group.id, rule={"first_name": "Ada", "include": []})
    assert (updated.rule_version, member_emails(gw, group.id)) == (1, ["ada@shop.test"])
    manual = gw.groups.update(group.id, rule=None)
    assert manual.rule is None and manual.rule_version == 2
    assert member_emails(gw, group.id) == ["ada@shop.test"]  # the members stay
    gw.groups.remove_customers(group.id, [ada.id])  # and may be changed by hand again
    assert member_emails(gw, group.id) == []


def test_include_and_exclude_are_the_merchants_exceptions(gw):
    ada = gw.customers.create("ada@shop.test", first_name="Ada")
    bob = gw.customers.create("bob@shop.test", first_name="Bob")

    group = gw.groups.create(
        "Adas", rule={"first_name": "Ada", "include": [bob.id], "exclude": [ada.id]}
    )

    assert member_emails(gw, group.id) == ["bob@shop.test"]


def test_a_smart_groups_members_are_not_changed_by_hand(gw):
    ada = gw.customers.create("ada@shop.test", first_name="Ada")
    group = gw.groups.create("Adas", rule={"first_name": "Ada"})
    manual = gw.groups.create("Manual")
    before = gw.events.last_sequence()

    with pytest.raises(NotAllowed, match="smart group"):
        gw.groups.remove_customers(group.id, [ada.id])
    with pytest.raises(NotAllowed, match="smart group"):
        gw.customers.update_groups(ada.id, add=[manual.id], remove=[group.id])
    gw.customers.set_groups(ada.id, [manual.id])  # "exactly these" leaves smart groups be

    assert member_emails(gw, group.id) == ["ada@shop.test"]
    assert [e.type for e in gw.events.list(after=before, limit=None)] == [ADDED]


def test_a_rule_reading_another_group_follows_it_and_cycles_are_refused(gw):
    ada = gw.customers.create("ada@shop.test")
    wholesale = gw.groups.create("Wholesale")
    retail = gw.groups.create("Retail", rule={"groups.id": {"$nin": [wholesale.id]}})
    assert member_emails(gw, retail.id) == ["ada@shop.test"]

    gw.groups.add_customers(wholesale.id, [ada.id])
    assert member_emails(gw, retail.id) == []
    assert membership_events(gw, retail.id)[-1] == (REMOVED, ada.id, "membership_changed")

    with pytest.raises(InvalidData, match="would read each other"):
        gw.groups.update(wholesale.id, rule={"groups.id": retail.id, "include": [ada.id]})
    assert gw.groups.get(wholesale.id).rule is None
    with pytest.raises(InvalidData, match="its own members"):
        gw.groups.update(retail.id, rule={"groups.id": retail.id})


class VetoBob:
    @hookimpl
    def before_add_customer_to_group(self, group, customers, context):
        if any(c.first_name == "Bob" for c in customers):
            raise HookRejected("no Bobs")


class DropBob:
    @hookimpl
    def before_add_customer_to_group(self, group, customers, context):
        customers[:] = [c for c in customers if c.first_name != "Bob"]


@pytest.mark.parametrize("plugin", [VetoBob(), DropBob()], ids=["veto", "filter"])
def test_a_vetoing_hook_keeps_the_customer_out_and_the_veto_is_recorded(gw, plugin):
    gw.register(plugin)
    gw.customers.create("ada@shop.test", first_name="Ada")
    bob = gw.customers.create("bob@shop.test", first_name="Bob")
    group = gw.groups.create("Named", rule={"first_name": {"$in": ["Ada", "Bob"]}})

    carl = gw.customers.create("carl@shop.test", first_name="Carl")
    gw.customers.update(carl.id, first_name="Bob")  # the customer's change still commits

    expected = ["ada@shop.test"] if isinstance(plugin, DropBob) else []
    assert member_emails(gw, group.id) == expected
    assert gw.customers.get(carl.id).first_name == "Bob"
    vetoes = [e.data for e in gw.events.list(type=VETOED, limit=None)]
    assert [v["trigger"] for v in vetoes] == ["rule_changed", "customer_updated"]
    assert vetoes[1]["customer_ids"] == [carl.id] and vetoes[1]["action"] == "add"
    assert bob.id in vetoes[0]["customer_ids"]
    message = "no Bobs" if isinstance(plugin, VetoBob) else None
    assert vetoes[1]["message"] == message


def test_preview_tells_who_would_join_and_leave_and_writes_nothing(gw):
    ada = gw.customers.create("ada@shop.test", first_name="Ada")
    bob = gw.customers.create("bob@shop.test", first_name="Bob")
    group = gw.groups.create("Adas", rule={"first_name": "Ada"})
    before = gw.events.last_sequence()

    preview = gw.groups.preview_rule(group.id, {"first_name": "Bob"})

    assert (preview.joining, preview.joining_ids) == (1, [bob.id])
    assert (preview.leaving, preview.leaving_ids) == (1, [ada.id])
    assert gw.events.last_sequence() == before
    assert member_emails(gw, group.id) == ["ada@shop.test"]


def test_a_rule_edited_in_another_process_is_seen_by_the_next_change(gw, database_url):
    ada = gw.customers.create("ada@shop.test", first_name="Ada")
    group = gw.groups.create("Named", rule={"first_name": "Ada"})
    other = Groupwire.open(database_url, load_entry_points=False, plugins=[])
    try:
        other.groups.update(group.id, rule={"first_name": "Bob"})
    finally:
        other.close()

    gw.customers.update(ada.id, first_name="Bob")  # this service's index is stale

    assert member_emails(gw, group.id) == ["ada@shop.test"]
    assert membership_events(gw, group.id)[-1] == (ADDED, ada.id, "customer_updated")
