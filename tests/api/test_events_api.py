"""/admin/events: the log with a cursor, a group's audit trail, and the live SSE stream."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from groupwire import Groupwire
from groupwire.api import create_app
from tests.api.conftest import assert_error, bearer
from tests.api.test_customer_groups import create_customer, create_group


def test_given_events_when_listing_then_envelopes_come_in_sequence_order_with_a_cursor(client):
    group = create_group(client, "VIP")
    alice = create_customer(client, "alice@example.com")
    client.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": [alice["id"]]})

    everything = client.get("/admin/events").json()
    assert [e["sequence"] for e in everything["events"]] == [1, 2, 3]
    assert [e["type"] for e in everything["events"]] == [
        "customer_group.created",
        "customer.created",
        "customer_group.customer_added",
    ]
    first = everything["events"][0]
    assert first["specversion"] == "1.0" and first["subject"] == group["id"]
    assert first["data"]["name"] == "VIP" and first["actor"].startswith("apikey_")
    assert everything["next_after"] == 3

    page = client.get("/admin/events", params={"limit": 2}).json()
    assert [e["sequence"] for e in page["events"]] == [1, 2] and page["next_after"] == 2
    rest = client.get("/admin/events", params={"after": page["next_after"]}).json()
    assert [e["sequence"] for e in rest["events"]] == [3] and rest["next_after"] == 3
    empty = client.get("/admin/events", params={"after": 3}).json()
    assert empty["events"] == [] and empty["next_after"] == 3


def test_given_events_when_filtering_by_type_subject_and_time_then_only_matches(client):
    group = create_group(client, "VIP")
    alice = create_customer(client, "alice@example.com")
    client.post(f"/admin/customer-groups/{group['id']}", json={"name": "Gold"})

    def types(**params: Any) -> list[str]:
        response = client.get("/admin/events", params=params)
        assert response.status_code == 200, response.text
        return [e["type"] for e in response.json()["events"]]

    assert types(type="customer.created") == ["customer.created"]
    assert types(type="customer_group.*") == ["customer_group.created", "customer_group.updated"]
    assert types(type=["customer.*", "customer_group.updated"]) == [
        "customer.created",
        "customer_group.updated",
    ]
    assert types(subject=alice["id"]) == ["customer.created"]
    events = client.get("/admin/events").json()["events"]
    second_time = events[1]["time"]
    assert types(since=second_time) == ["customer.created", "customer_group.updated"]
    assert types(until=second_time) == ["customer_group.created"]
    assert_error(client.get("/admin/events", params={"after": -1}), 400, "invalid_data")
    assert_error(client.get("/admin/events", params={"since": "soon"}), 400, "invalid_data")


def test_given_a_group_when_reading_its_audit_trail_then_only_its_events_even_after_deletion(
    client,
):
    group = create_group(client, "VIP")
    other = create_group(client, "Other")
    alice = create_customer(client, "alice@example.com")
    client.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": [alice["id"]]})
    client.delete(f"/admin/customer-groups/{group['id']}")
    url = f"/admin/customer-groups/{group['id']}/events"

    trail = client.get(url).json()
    assert [e["type"] for e in trail["events"]] == [
        "customer_group.created",
        "customer_group.customer_added",
        "customer_group.customer_removed",
        "customer_group.deleted",
    ]
    assert all(e["subject"] == group["id"] for e in trail["events"])
    assert [e["type"] for e in client.get(url, params={"type": "*.deleted"}).json()["events"]] == []
    only_deleted = client.get(url, params={"type": "customer_group.deleted"}).json()["events"]
    assert [e["data"]["member_count"] for e in only_deleted] == [1]
    other_trail = client.get(f"/admin/customer-groups/{other['id']}/events").json()
    assert [e["type"] for e in other_trail["events"]] == ["customer_group.created"]
    assert_error(client.get("/admin/customer-groups/cusgroup_never/events"), 404, "not_found")
    assert_error(client.get(f"/admin/customer-groups/{alice['id']}/events"), 404, "not_found")


# --- the live stream, over a real HTTP server ----------------------------------------------


class Server:
    """uvicorn serving an app on a free 127.0.0.1 port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]})

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.socket.close()


def sse_messages(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Parse an SSE body into messages (comments come back as ``{"comment": ...}``)."""
    message: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if message:
                yield message
            message = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            message[name] = value.removeprefix(" ")


def next_event(messages: Iterator[dict[str, str]]) -> dict[str, Any]:
    for message in messages:
        if "data" in message:
            return {
                "sse_id": int(message["id"]),
                "sse_event": message["event"],
                **json.loads(message["data"]),
            }
    raise AssertionError("the stream ended")


@pytest.fixture
def streaming(gw: Groupwire, admin_secret: str) -> Iterator[tuple[Server, httpx.Client]]:
    gw.settings = gw.settings.model_copy(
        update={"sse_heartbeat_interval": 0.3, "sse_poll_interval": 0.2}
    )
    with (
        Server(create_app(gw)) as server,
        httpx.Client(
            base_url=server.url, headers=bearer(admin_secret), timeout=httpx.Timeout(10.0)
        ) as http,
    ):
        yield server, http


def wait_for_no_streams(server: Server) -> None:
    signal = server.server.config.app.state.commit_signal
    deadline = time.monotonic() + 15
    while signal.open_streams:
        assert time.monotonic() < deadline, "the stream did not end after the client left"
        time.sleep(0.05)


def test_given_a_stream_when_events_commit_then_they_arrive_live_with_sequence_ids(gw, streaming):
    server, http = streaming
    # no polling within the client's 10 s read timeout: only the commit signal can wake it
    gw.settings = gw.settings.model_copy(
        update={"sse_heartbeat_interval": 60.0, "sse_poll_interval": 60.0}
    )
    backlog = gw.groups.create("Before")

    with http.stream("GET", "/admin/events/stream", params={"after": 0}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = sse_messages(response)
        first = next_event(messages)
        assert (first["sse_id"], first["sse_event"], first["subject"]) == (
            1,
            "customer_group.created",
            backlog.id,
        )
        live = gw.groups.create("Live")
        second = next_event(messages)
        assert (second["sse_id"], second["sequence"], second["subject"]) == (2, 2, live.id)
        assert server.server.config.app.state.commit_signal.open_streams == 1

    wait_for_no_streams(server)


def test_given_a_last_event_id_and_a_type_filter_then_the_stream_resumes_with_only_those(
    gw, streaming, database_url
):
    server, http = streaming
    gw.groups.create("One")
    alice = gw.customers.create("alice@example.com")
    gw.groups.create("Two")

    headers = {"Last-Event-ID": "1"}
    with http.stream(
        "GET", "/admin/events/stream", params={"type": "customer.*"}, headers=headers
    ) as response:
        messages = sse_messages(response)
        assert next_event(messages)["subject"] == alice.id
        # a change made by another process (no commit signal here): found by polling
        with Groupwire.open(database_url, load_entry_points=False) as elsewhere:
            bob = elsewhere.customers.create("bob@example.com")
        event = next_event(messages)
        assert (event["type"], event["subject"]) == ("customer.created", bob.id)

    wait_for_no_streams(server)


def test_given_an_idle_stream_then_heartbeats_flow_and_a_bad_cursor_is_400(gw, streaming):
    server, http = streaming

    with http.stream("GET", "/admin/events/stream") as response:
        comments = [
            m.get("comment") for m, _ in zip(sse_messages(response), range(3), strict=False)
        ]
    assert "heartbeat" in comments
    wait_for_no_streams(server)

    response = http.get("/admin/events/stream", headers={"Last-Event-ID": "not-a-number"})
    assert_error(response, 400, "invalid_data")
    assert http.get("/admin/events/stream", params={"after": -1}).status_code == 400
    assert http.get("/admin/events/stream", headers={"Authorization": ""}).status_code == 401


def test_given_a_since_in_the_future_then_nothing_is_listed(client, gw):
    create_group(client, "VIP")
    future = (gw.events.list()[0].time + timedelta(days=1)).isoformat()
    assert client.get("/admin/events", params={"since": future}).json()["events"] == []
