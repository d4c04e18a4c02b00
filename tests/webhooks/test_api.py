"""``/admin/webhooks`` over HTTP: admin scope for changes, read for reads, Medusa-shaped errors."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from groupwire import Groupwire
from groupwire.api import create_app
from groupwire.auth import keys
from tests.webhooks.receivers import Receiver


@pytest.fixture
def clients(gw: Groupwire) -> Iterator[dict[str, TestClient]]:
    app = create_app(gw)
    made = {}
    for scope in ("admin", "write", "read"):
        secret = keys.create_key(gw.engine, f"{scope} key", [scope])[1]
        made[scope] = TestClient(app, headers={"Authorization": f"Bearer {secret}"})
    made["anonymous"] = TestClient(app)
    yield made
    for client in made.values():
        client.close()


def error_of(response: Any, status: int, type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == type and body["message"], body
    return str(body["message"])


def test_an_admin_creates_an_endpoint_and_sees_its_secret_once(
    clients: dict[str, TestClient],
) -> None:
    admin, reader = clients["admin"], clients["read"]
    created = admin.post(
        "/admin/webhooks",
        json={
            "url": "http://127.0.0.1:9/crm",
            "event_types": ["customer_group.*", "customer.created"],
            "description": "CRM",
        },
    )
    assert created.status_code == 200, created.text
    webhook = created.json()["webhook"]
    assert webhook["secret"].startswith("whsec_")
    assert webhook["event_types"] == ["customer_group.*", "customer.created"]
    assert webhook["enabled"] is True and webhook["ordered"] is False

    listed = reader.get("/admin/webhooks").json()
    assert listed["count"] == 1 and listed["offset"] == 0 and listed["limit"] == 50
    assert "secret" not in listed["webhooks"][0]
    one = reader.get(f"/admin/webhooks/{webhook['id']}").json()["webhook"]
    assert "secret" not in one and one["description"] == "CRM"

    rotated = admin.post(f"/admin/webhooks/{webhook['id']}/rotate-secret").json()["webhook"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != webhook["secret"]

    updated = admin.post(
        f"/admin/webhooks/{webhook['id']}", json={"enabled": False, "ordered": True}
    ).json()["webhook"]
    assert updated["enabled"] is False and updated["ordered"] is True
    assert updated["event_types"] == webhook["event_types"]

    deleted = admin.delete(f"/admin/webhooks/{webhook['id']}")
    assert deleted.json() == {"id": webhook["id"], "object": "webhook", "deleted": True}
    error_of(reader.get(f"/admin/webhooks/{webhook['id']}"), 404, "not_found")


def test_changes_need_the_admin_scope_and_reads_need_a_key(
    clients: dict[str, TestClient],
) -> None:
    body = {"url": "http://127.0.0.1:9/x"}
    error_of(clients["read"].post("/admin/webhooks", json=body), 403, "forbidden")
    error_of(clients["write"].post("/admin/webhooks", json=body), 403, "forbidden")
    error_of(clients["anonymous"].get("/admin/webhooks"), 401, "unauthorized")
    assert clients["write"].get("/admin/webhooks").status_code == 200
    assert clients["admin"].post("/admin/webhooks", json=body).status_code == 200


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"url": "http://169.254.169.254/latest"}, "metadata"),
        ({"url": "ftp://127.0.0.1/x"}, "https"),
        ({"url": "http://127.0.0.1/x", "event_types": ["customer group"]}, "event type"),
        ({"url": "http://127.0.0.1/x", "event_types": []}, "at least one"),
        ({"url": "http://127.0.0.1/x", "secret": "whsec_mine"}, "Unrecognized"),
        ({"event_types": ["*"]}, "url"),
        ({"url": "http://127.0.0.1/x", "enabled": "maybe"}, "enabled"),
    ],
)
def test_bad_endpoints_are_refused_with_400(
    clients: dict[str, TestClient], body: dict[str, Any], words: str
) -> None:
    message = error_of(clients["admin"].post("/admin/webhooks", json=body), 400, "invalid_data")
    assert words in message


def test_a_group_filter_naming_no_group_is_404(clients: dict[str, TestClient]) -> None:
    response = clients["admin"].post(
        "/admin/webhooks", json={"url": "http://127.0.0.1/x", "group_ids": ["cusgroup_nope"]}
    )
    error_of(response, 404, "not_found")


def test_the_delivery_log_resend_and_replay_over_http(
    gw: Groupwire, clients: dict[str, TestClient]
) -> None:
    admin, reader = clients["admin"], clients["read"]
    with Receiver(statuses=[500]) as receiver:
        webhook = admin.post("/admin/webhooks", json={"url": receiver.url}).json()["webhook"]
        gw.groups.create("Over HTTP")
        gw.deliver_pending()
        gw.webhooks.deliver_due()

        messages = reader.get(f"/admin/webhooks/{webhook['id']}/messages").json()
        assert messages["count"] == 1
        [message] = messages["messages"]
        assert message["status"] == "pending" and message["last_status_code"] == 500
        attempts = reader.get(f"/admin/webhooks/{webhook['id']}/attempts").json()
        assert [a["status_code"] for a in attempts["attempts"]] == [500]
        assert attempts["attempts"][0]["message_id"] == message["id"]

        resent = admin.post(f"/admin/webhooks/{webhook['id']}/messages/{message['id']}/resend")
        assert resent.json()["message"]["status"] == "pending"
        gw.webhooks.deliver_due()
        one = reader.get(f"/admin/webhooks/{webhook['id']}/messages/{message['id']}").json()
        assert one["message"]["status"] == "succeeded" and one["message"]["attempts"] == 2

        replayed = admin.post(
            f"/admin/webhooks/{webhook['id']}/replay", json={"since": "2000-01-01T00:00:00Z"}
        )
        assert replayed.json()["replayed"] == 1
        gw.webhooks.deliver_due()
        assert len(receiver.received) == 3
        succeeded = reader.get(
            f"/admin/webhooks/{webhook['id']}/attempts", params={"succeeded": "true"}
        ).json()
        assert succeeded["count"] == 2

        error_of(
            admin.post(f"/admin/webhooks/{webhook['id']}/messages/msg_nope/resend"),
            404,
            "not_found",
        )
        error_of(
            reader.get(f"/admin/webhooks/{webhook['id']}/messages", params={"status": "lost"}),
            400,
            "invalid_data",
        )
        error_of(
            admin.post(f"/admin/webhooks/{webhook['id']}/replay", json={"since": "yesterday"}),
            400,
            "invalid_data",
        )
        error_of(reader.get("/admin/webhooks/wh_nope/attempts"), 404, "not_found")
