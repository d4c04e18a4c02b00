"""Stakeholder notifications: "when a customer joins group X, mail Y / call webhook Y"."""

from __future__ import annotations

from typing import Any

from groupwire import Groupwire
from groupwire.webhooks import webhooks_of
from tests.usecases.mailbox import Mailbox
from tests.webhooks.receivers import Receiver


def test_a_sales_rep_is_mailed_when_someone_joins_high_value(
    gw: Groupwire, mailbox: Mailbox
) -> None:
    high_value = gw.groups.create("High-Value")
    other = gw.groups.create("Other")
    rule = gw.notifications.create(high_value.id, emails=["rep@shop.example", "lead@shop.example"])
    jane = gw.customers.create(
        "jane@example.com", first_name="Jane", last_name="Doe", company_name="Acme"
    )

    gw.groups.add_customers(other.id, [jane.id])  # another group: nobody is told
    gw.groups.add_customers(high_value.id, [jane.id])
    gw.groups.remove_customers(high_value.id, [jane.id])  # the rule is about joins only
    assert gw.drain(30)

    assert len(mailbox.received) == 1
    mail = mailbox.received[0]
    assert mail.rcpt_tos == ["rep@shop.example", "lead@shop.example"]
    assert mail.subject == "jane@example.com joined High-Value"
    assert "Jane Doe <jane@example.com> (Acme) joined the customer group High-Value" in mail.text
    assert rule.id in mail.message["Message-ID"]


def test_a_rule_on_leaves_with_its_own_templates(gw: Groupwire, mailbox: Mailbox) -> None:
    group = gw.groups.create("Trial")
    gw.notifications.create(
        group.id,
        event_type="customer_group.customer_removed",
        emails=["success@shop.example"],
        subject="{{ customer.email }} left {{ group.name }}: follow up",
        body="Call {{ customer.phone }}",
        sender="Alerts <alerts@shop.example>",
    )
    jane = gw.customers.create("jane@example.com", phone="+1 555 0100")
    gw.groups.add_customers(group.id, [jane.id])
    gw.customers.delete(jane.id)  # leaving because the customer is deleted counts too
    assert gw.drain(30)

    assert [m.subject for m in mailbox.received] == ["jane@example.com left Trial: follow up"]
    assert mailbox.received[0].text.strip() == "Call +1 555 0100"
    assert mailbox.received[0].mail_from == "alerts@shop.example"


def test_a_failing_stakeholder_mail_is_retried_and_sent_once(
    gw: Groupwire, mailbox: Mailbox
) -> None:
    group = gw.groups.create("VIP")
    gw.notifications.create(group.id, emails=["a@shop.example"])
    gw.notifications.create(group.id, emails=["b@shop.example"])
    jane = gw.customers.create("jane@example.com")
    mailbox.refuse(1)  # the first rule's first attempt fails; the second rule's mail goes out

    gw.groups.add_customers(group.id, [jane.id])
    assert gw.drain(30)

    assert sorted(m.rcpt_tos[0] for m in mailbox.received) == ["a@shop.example", "b@shop.example"]
    assert gw.dead_letters.list() == []


def test_a_rule_with_a_webhook_notifies_it_through_a_signed_group_filtered_endpoint(
    gw: Groupwire,
) -> None:
    high_value = gw.groups.create("High-Value")
    other = gw.groups.create("Other")
    jane = gw.customers.create("jane@example.com")
    with Receiver() as receiver:
        rule = gw.notifications.create(high_value.id, webhook_url=receiver.url)
        assert rule.webhook_secret is not None and rule.webhook_secret.startswith("whsec_")
        receiver.secret = rule.webhook_secret
        endpoint = webhooks_of(gw).get(rule.webhook_endpoint_id or "")
        assert endpoint.group_ids == [high_value.id]
        assert endpoint.event_types == ["customer_group.customer_added"]

        gw.groups.add_customers(other.id, [jane.id])
        gw.groups.add_customers(high_value.id, [jane.id])
        assert gw.drain(30)
        webhooks_of(gw).deliver_due()

        assert receiver.wait_for(1)
        assert len(receiver.received) == 1
        delivered = receiver.received[0]
        assert delivered.verified, delivered.verify_error
        assert delivered.json["type"] == "customer_group.customer_added"
        assert delivered.json["data"] == {
            "group_id": high_value.id,
            "customer_id": jane.id,
            "timestamp": delivered.json["data"]["timestamp"],
        }

    gw.notifications.delete(rule.id)
    assert webhooks_of(gw).list().count == 0


def test_rules_are_validated_before_anything_is_saved(gw: Groupwire) -> None:
    group = gw.groups.create("VIP")

    def refused(**fields: Any) -> str:
        try:
            gw.notifications.create(group.id, **fields)
        except Exception as error:
            assert getattr(error, "type", None) in ("invalid_data", "not_found"), error
            return str(error)
        raise AssertionError(f"accepted {fields}")

    assert "emails" in refused(emails=["not-an-address"])
    assert "needs emails" in refused()
    assert "event_type" in refused(emails=["a@shop.example"], event_type="customer.created")
    assert "'emial'" in refused(emails=["a@shop.example"], subject="{{ customer.emial }}")
    refused(webhook_url="http://169.254.169.254/latest")  # the webhooks SSRF guard applies
    gw.close()
    strict = Groupwire.open(
        gw.settings.database_url, load_entry_points=False, webhooks_allow_private=False
    )
    try:
        try:
            strict.notifications.create(group.id, webhook_url="http://127.0.0.1:9/hook")
        except Exception as error:
            assert getattr(error, "type", None) == "invalid_data"
        else:
            raise AssertionError("a loopback webhook was accepted")
        assert strict.notifications.list().count == 0
        assert webhooks_of(strict).list().count == 0
    finally:
        strict.close()


def test_notification_rules_api(client: Any, writer: Any, gw: Groupwire) -> None:
    group = gw.groups.create("High-Value")
    body = {"group_id": group.id, "emails": ["rep@shop.example"], "description": "sales"}

    forbidden = writer.post("/admin/notification-rules", json=body)
    assert forbidden.status_code == 403, forbidden.text

    created = client.post("/admin/notification-rules", json=body)
    assert created.status_code == 200, created.text
    rule = created.json()["notification_rule"]
    assert rule["group_id"] == group.id and rule["emails"] == ["rep@shop.example"]
    assert rule["event_type"] == "customer_group.customer_added"
    assert "webhook_secret" not in rule

    listed = writer.get("/admin/notification-rules", params={"group_id": group.id})
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json()["notification_rules"]] == [rule["id"]]

    updated = client.post(
        f"/admin/notification-rules/{rule['id']}",
        json={"emails": ["rep@shop.example", "vp@shop.example"], "enabled": False},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["notification_rule"]["emails"] == ["rep@shop.example", "vp@shop.example"]
    assert updated.json()["notification_rule"]["enabled"] is False

    bad = client.post("/admin/notification-rules", json={**body, "emails": ["nope"]})
    assert bad.status_code == 400 and bad.json()["type"] == "invalid_data"
    missing = client.post("/admin/notification-rules", json={**body, "group_id": "cusgroup_x"})
    assert missing.status_code == 404 and missing.json()["type"] == "not_found"

    deleted = client.delete(f"/admin/notification-rules/{rule['id']}")
    assert deleted.json() == {"id": rule["id"], "object": "notification_rule", "deleted": True}
    assert client.get(f"/admin/notification-rules/{rule['id']}").status_code == 404
