"""Smart groups over the Admin API: ``rule`` on the group bodies, a 400 naming a bad rule
(nothing saved), 400 ``not_allowed`` for a manual change (as Medusa answers its own), the
preview route."""

from __future__ import annotations

from tests.api.conftest import all_events, assert_error


def test_given_a_group_created_with_a_rule_then_its_members_follow_it(client, gw):
    ada = gw.customers.create("ada@shop.test", first_name="Ada")

    created = client.post(
        "/admin/customer-groups?fields=+rule,+rule_version",
        json={"name": "Adas", "rule": {"first_name": "Ada"}},
    )

    assert created.status_code == 200, created.text
    group = created.json()["customer_group"]
    assert (group["rule"], group["rule_version"]) == ({"first_name": "Ada"}, 1)
    members = client.get(f"/admin/customer-groups/{group['id']}?fields=*customers").json()
    assert [c["id"] for c in members["customer_group"]["customers"]] == [ada.id]
    plain = client.get(f"/admin/customer-groups/{group['id']}").json()["customer_group"]
    assert "rule" not in plain  # Medusa's default fields, unless asked for


def test_given_a_bad_rule_then_400_invalid_data_and_nothing_saved(client, gw):
    before = len(all_events(gw))
    group = gw.groups.create("Plain")

    bad_create = client.post(
        "/admin/customer-groups", json={"name": "X", "rule": {"orders.total": {"$gte": 1}}}
    )
    bad_update = client.post(
        f"/admin/customer-groups/{group.id}", json={"rule": {"email": {"$regex": "x"}}}
    )

    assert "needs a currency" in assert_error(bad_create, 400, "invalid_data")["message"]
    assert "unknown operator '$regex'" in assert_error(bad_update, 400, "invalid_data")["message"]
    assert gw.groups.list(limit=10).count == 1 and gw.groups.get(group.id).rule is None
    assert len(all_events(gw)) == before + 1  # the Plain group's creation only


def test_given_a_smart_group_then_a_manual_batch_is_refused_and_preview_answers(client, gw):
    ada = gw.customers.create("ada@shop.test", first_name="Ada")
    bob = gw.customers.create("bob@shop.test", first_name="Bob")
    group = gw.groups.create("Adas", rule={"first_name": "Ada"})

    refused = client.post(f"/admin/customer-groups/{group.id}/customers", json={"add": [bob.id]})
    preview = client.post(
        f"/admin/customer-groups/{group.id}/preview-rule?limit=5",
        json={"rule": {"first_name": "Bob"}},
    )
    bad_preview = client.post(
        f"/admin/customer-groups/{group.id}/preview-rule", json={"rule": {"nope": 1}}
    )

    assert "smart group" in assert_error(refused, 400, "not_allowed")["message"]
    assert preview.json() == {
        "preview": {
            "joining": {"count": 1, "customer_ids": [bob.id]},
            "leaving": {"count": 1, "customer_ids": [ada.id]},
        }
    }
    assert_error(bad_preview, 400, "invalid_data")
    assert_error(
        client.post("/admin/customer-groups/cusgroup_x/preview-rule", json={"rule": None}),
        404,
        "not_found",
    )
