"""``/admin/customer-groups/{id}/welcome-email``: templates checked on save; the API never waits
for the mail server."""

from __future__ import annotations

from typing import Any

from groupwire import Groupwire
from tests.usecases.mailbox import Mailbox

VALID = {
    "subject": "Welcome to {{ group.name }}",
    "body": "Hi {{ customer.first_name }}!",
    "sender": "Shop <hello@shop.example>",
}


def error_of(response: Any, status: int, type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == type, body
    return str(body["message"])


def test_put_get_preview_and_delete_a_welcome_email(client: Any, gw: Groupwire) -> None:
    group = gw.groups.create("VIP")
    jane = gw.customers.create("jane@example.com", first_name="Jane")
    url = f"/admin/customer-groups/{group.id}/welcome-email"
    assert error_of(client.get(url), 404, "not_found")

    put = client.put(url, json=VALID)
    assert put.status_code == 200, put.text
    saved = put.json()["welcome_email"]
    assert saved["group_id"] == group.id
    assert saved["subject"] == VALID["subject"] and saved["enabled"] is True
    assert client.get(url).json()["welcome_email"] == saved

    preview = client.post(f"{url}/preview", json={"customer_id": jane.id})
    assert preview.status_code == 200, preview.text
    assert preview.json()["preview"]["subject"] == "Welcome to VIP"
    assert preview.json()["preview"]["body"] == "Hi Jane!"

    deleted = client.delete(url)
    assert deleted.json() == {"id": group.id, "object": "welcome_email", "deleted": True}
    assert error_of(client.get(url), 404, "not_found")


def test_a_typo_in_a_template_is_reported_when_saving(client: Any, gw: Groupwire) -> None:
    group = gw.groups.create("VIP")
    url = f"/admin/customer-groups/{group.id}/welcome-email"

    field_typo = client.put(url, json={**VALID, "body": "Hi {{ customer.frist_name }}"})
    message = error_of(field_typo, 400, "invalid_data")
    assert "body" in message and "'frist_name'" in message and "first_name" in message

    variable_typo = client.put(url, json={**VALID, "subject": "Hi {{ custmer.email }}"})
    assert "'custmer'" in error_of(variable_typo, 400, "invalid_data")

    syntax = client.put(url, json={**VALID, "body": "Hi {% if customer.email %}"})
    assert "syntax error on line 1" in error_of(syntax, 400, "invalid_data")

    sandboxed = client.put(url, json={**VALID, "body": "{{ ''.__class__.__mro__ }}"})
    error_of(sandboxed, 400, "invalid_data")
    huge = client.put(url, json={**VALID, "body": "{{ 'x' * 10**9 }}"})
    assert "too large" in error_of(huge, 400, "invalid_data")

    bad_sender = client.put(url, json={**VALID, "sender": "not an address"})
    assert "sender" in error_of(bad_sender, 400, "invalid_data")

    unknown_field = client.put(url, json={**VALID, "cc": "x@example.com"})
    error_of(unknown_field, 400, "invalid_data")

    assert error_of(client.get(url), 404, "not_found")  # nothing was saved


def test_a_welcome_email_for_an_unknown_group_is_not_found(client: Any) -> None:
    response = client.put("/admin/customer-groups/cusgroup_nope/welcome-email", json=VALID)
    assert "cusgroup_nope" in error_of(response, 404, "not_found")


def test_a_slow_mail_server_never_slows_the_api(
    client: Any, gw: Groupwire, mailbox: Mailbox
) -> None:
    group = gw.groups.create("VIP")
    first = gw.customers.create("first@example.com")
    second = gw.customers.create("second@example.com")
    assert client.put(f"/admin/customer-groups/{group.id}/welcome-email", json=VALID).is_success
    mailbox.hold()  # the server accepts connections but keeps every DATA waiting
    gw.start()

    added = client.post(f"/admin/customer-groups/{group.id}/customers", json={"add": [first.id]})
    assert added.status_code == 200, added.text
    assert mailbox.in_data.wait(30)  # the mailer is now stuck inside the SMTP exchange ...
    # ... and the API still answers, reads and writes alike, while the mail is in flight
    again = client.post(f"/admin/customer-groups/{group.id}/customers", json={"add": [second.id]})
    assert again.status_code == 200, again.text
    assert client.get(f"/admin/customer-groups/{group.id}").status_code == 200
    assert mailbox.received == []

    mailbox.release()
    assert gw.drain(30)
    assert sorted(m.rcpt_tos[0] for m in mailbox.received) == [
        "first@example.com",
        "second@example.com",
    ]
