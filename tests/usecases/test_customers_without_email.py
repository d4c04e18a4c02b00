"""The built-in use cases with a customer who has no email (Medusa 2.21 allows them).

A welcome email has nobody to go to: the join is skipped with a logged reason, never retried
nor dead-lettered. A notification rule mails stakeholders, not the customer: they are still
told, the customer named by id. The audit export carries ``email: null`` as recorded.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from groupwire import Groupwire
from tests.usecases.mailbox import Mailbox


def test_given_a_welcome_email_when_a_customer_without_email_joins_then_skipped_with_reason(
    gw: Groupwire, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    vip = gw.groups.create("VIP")
    gw.mail.set(vip.id, subject="Welcome, {{ customer.first_name }}", body="Hello")
    john = gw.customers.create(first_name="John")
    jane = gw.customers.create("jane@example.com", first_name="Jane")

    with caplog.at_level(logging.INFO, logger="groupwire.mail.welcome"):
        gw.groups.add_customers(vip.id, [john.id, jane.id])
        assert gw.drain(30)

    assert [m.rcpt_tos for m in mailbox.received] == [["jane@example.com"]]
    [skipped] = [r for r in caplog.records if r.name == "groupwire.mail.welcome"]
    assert john.id in skipped.getMessage() and vip.id in skipped.getMessage()
    assert "has no email address" in skipped.getMessage()
    assert gw.dead_letters.list() == []
    joins = gw.events.list(type="customer_group.customer_added", limit=None)
    assert [gw.mail.sent(e.id) for e in joins] == [False, True]


def test_given_a_rule_when_a_customer_without_email_joins_then_stakeholders_are_told(
    gw: Groupwire, mailbox: Mailbox
) -> None:
    vip = gw.groups.create("VIP")
    gw.notifications.create(vip.id, emails=["rep@shop.example"])
    john = gw.customers.create(first_name="John", last_name="Doe")

    gw.groups.add_customers(vip.id, [john.id])
    assert gw.drain(30)

    [mail] = mailbox.received
    assert mail.rcpt_tos == ["rep@shop.example"]
    assert mail.subject == f"{john.id} joined VIP"
    assert "John Doe (no email) joined the customer group VIP" in mail.text
    assert gw.dead_letters.list() == []


def test_given_a_customer_without_email_then_its_audit_trail_exports_email_null(
    client: Any, gw: Groupwire
) -> None:
    vip = gw.groups.create("VIP")
    john = gw.customers.create(first_name="John")
    gw.groups.add_customers(vip.id, [john.id])
    url = f"/admin/customers/{john.id}/events/export"

    as_csv = client.get(url, params={"format": "csv"})
    as_jsonl = client.get(url, params={"format": "jsonl"})

    assert as_csv.status_code == 200, as_csv.text
    lines = as_csv.text.splitlines()
    assert len(lines) == 3  # header, customer.created, customer_added
    assert "customer.created" in lines[1] and '""email"": null' in lines[1]
    [created, added] = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert created["type"] == "customer.created" and created["data"]["email"] is None
    assert added["data"]["customer_id"] == john.id
