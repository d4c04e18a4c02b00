"""Delivering events to real HTTP receivers: signatures, filters, retries, the log, resends."""

from __future__ import annotations

import itertools
import ssl
import subprocess
from pathlib import Path

from sqlalchemy import func, select
from standardwebhooks import Webhook

from groupwire import Groupwire
from groupwire.webhooks import DEFAULT_SCHEDULE, ManualClock
from groupwire.webhooks.fanout import fan_out
from groupwire.webhooks.tables import webhook_attempt, webhook_message
from tests.webhooks.conftest import open_gw
from tests.webhooks.receivers import Received, Receiver


def deliver(gw: Groupwire) -> int:
    """Turn committed events into messages, then send what is due; returns attempts made."""
    gw.deliver_pending()
    return gw.webhooks.deliver_due()


def test_given_an_endpoint_when_a_group_is_created_then_the_receiver_verifies_the_envelope(
    gw: Groupwire,
) -> None:
    with Receiver() as receiver:
        endpoint = gw.webhooks.create(receiver.url, event_types=["customer_group.*"])
        receiver.secret = endpoint.secret
        group = gw.groups.create("Paid")

        assert deliver(gw) == 1

        assert len(receiver.received) == 1
        got = receiver.received[0]
        assert got.verified, got.verify_error
        assert got.headers["content-type"] == "application/json"
        [event] = gw.events.list(type="customer_group.created")
        assert got.json == event.envelope()
        assert got.json["data"]["id"] == group.id
        [message] = gw.webhooks.messages(endpoint.id).items
        assert got.headers["webhook-id"] == message.id
        assert message.status == "succeeded" and message.attempts == 1
        [attempt] = gw.webhooks.attempts(endpoint.id).items
        assert attempt.succeeded and attempt.status_code == 200 and attempt.response == "ok"
        assert attempt.duration_ms >= 0 and attempt.error is None


def test_a_bulk_add_delivers_one_signed_message_per_customer_with_its_own_envelope(
    gw: Groupwire,
) -> None:
    vip = gw.groups.create("VIP")
    ids = [gw.customers.create(f"c{n}@example.com").id for n in range(25)]
    with Receiver() as receiver:
        endpoint = gw.webhooks.create(receiver.url, event_types=["customer_group.customer_added"])
        receiver.secret = endpoint.secret
        gw.groups.add_customers(vip.id, ids)

        deliver(gw)

        events = gw.events.list(type="customer_group.customer_added", limit=None)
        assert len(events) == 25
        assert all(got.verified for got in receiver.received)
        assert sorted((r.json for r in receiver.received), key=lambda j: j["sequence"]) == [
            e.envelope() for e in events
        ]
        assert sorted(r.json["data"]["customer_id"] for r in receiver.received) == sorted(ids)
        assert len({r.headers["webhook-id"] for r in receiver.received}) == 25


def test_the_receivers_library_rejects_a_tampered_body(gw: Groupwire) -> None:
    with Receiver() as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        gw.groups.create("Trial")
        deliver(gw)
        got = receiver.received[0]
        Webhook(endpoint.secret).verify(got.body, got.headers)  # the genuine one passes
        tampered = got.body.replace(b"Trial", b"Paid!")
        try:
            Webhook(endpoint.secret).verify(tampered, got.headers)
        except Exception as error:
            assert "signature" in str(error).lower()
        else:
            raise AssertionError("a tampered body was accepted")


def test_filters_deliver_only_matching_types_and_groups(gw: Groupwire) -> None:
    vip = gw.groups.create("VIP")
    other = gw.groups.create("Other")
    customer = gw.customers.create("ann@example.com")
    with Receiver() as groups_rx, Receiver() as exact_rx, Receiver() as vip_rx:
        gw.webhooks.create(groups_rx.url, event_types=["customer_group.*"])
        gw.webhooks.create(exact_rx.url, event_types=["customer.created"])
        gw.webhooks.create(
            vip_rx.url, event_types=["customer_group.customer_added"], group_ids=[vip.id]
        )
        gw.groups.add_customers(vip.id, [customer.id])
        gw.groups.add_customers(other.id, [customer.id])
        gw.customers.create("bob@example.com")

        deliver(gw)

        assert [r.json["type"] for r in groups_rx.received] == [
            "customer_group.customer_added",
            "customer_group.customer_added",
        ]
        assert [r.json["data"]["email"] for r in exact_rx.received] == ["bob@example.com"]
        assert [r.json["data"]["group_id"] for r in vip_rx.received] == [vip.id]


def test_an_event_handled_twice_creates_one_message(gw: Groupwire) -> None:
    with Receiver() as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        gw.groups.create("Once")
        gw.deliver_pending()
        [event] = gw.events.list()
        assert fan_out(gw.engine, event, now=gw.webhooks.clock.now()) == [endpoint.id]
        assert gw.webhooks.messages(endpoint.id).count == 1
        deliver(gw)
        assert len(receiver.received) == 1


def test_a_disabled_endpoint_gets_no_messages_and_events_before_creation_are_not_sent(
    gw: Groupwire,
) -> None:
    gw.groups.create("Before")
    with Receiver() as receiver:
        endpoint = gw.webhooks.create(receiver.url, enabled=False)
        gw.groups.create("While disabled")
        deliver(gw)
        gw.webhooks.update(endpoint.id, enabled=True)
        gw.groups.create("After")
        deliver(gw)
        assert [r.json["data"]["name"] for r in receiver.received] == ["After"]


def test_failed_deliveries_follow_the_default_retry_schedule_then_fail(gw: Groupwire) -> None:
    clock = ManualClock()
    gw.webhooks.clock = clock
    with Receiver(status=500, response_body=b"down") as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        gw.groups.create("Flaky")
        assert deliver(gw) == 1
        for delay in DEFAULT_SCHEDULE[1:]:
            clock.advance(delay - 1)
            assert gw.webhooks.deliver_due() == 0, "retried before its time"
            clock.advance(1)
            assert gw.webhooks.deliver_due() == 1
        clock.advance(days=30)
        assert gw.webhooks.deliver_due() == 0

        assert len(receiver.received) == len(DEFAULT_SCHEDULE) == 8
        assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
        [message] = gw.webhooks.messages(endpoint.id).items
        assert message.status == "failed"
        assert message.attempts == 8 and message.next_attempt_at is None
        assert message.last_status_code == 500 and message.last_error == "HTTP 500"
        attempts = list(reversed(gw.webhooks.attempts(endpoint.id).items))
        assert [a.attempt for a in attempts] == list(range(1, 9))
        assert {(a.status_code, a.response, a.succeeded) for a in attempts} == {
            (500, "down", False)
        }
        gaps = [
            (later.attempted_at - earlier.attempted_at).total_seconds()
            for earlier, later in itertools.pairwise(attempts)
        ]
        assert gaps == list(DEFAULT_SCHEDULE[1:])


def test_a_failed_message_can_be_resent_with_the_same_webhook_id(database_url: str) -> None:
    gw = open_gw(database_url, webhooks_retry_schedule=[0, 0])
    with gw, Receiver(statuses=[503, 503]) as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        receiver.secret = endpoint.secret
        gw.groups.create("Retry me")
        assert deliver(gw) == 2
        [message] = gw.webhooks.messages(endpoint.id, status="failed").items

        resent = gw.webhooks.resend(endpoint.id, message.id)
        assert resent.status == "pending"
        assert gw.webhooks.deliver_due() == 1

        assert [r.headers["webhook-id"] for r in receiver.received] == [message.id] * 3
        assert receiver.received[-1].verified
        after = gw.webhooks.message(endpoint.id, message.id)
        assert after.status == "succeeded" and after.attempts == 3
        assert after.delivered_at is not None


def test_replay_since_a_time_sends_new_copies_of_the_matching_events(gw: Groupwire) -> None:
    with Receiver() as receiver:
        endpoint = gw.webhooks.create(receiver.url, event_types=["customer_group.created"])
        gw.groups.create("One")
        gw.groups.create("Two")
        gw.customers.create("not-a-group-event@example.com")
        deliver(gw)
        [two, _] = gw.events.list(type="customer_group.created", descending=True)

        assert gw.webhooks.replay(endpoint.id, two.time) == 1
        deliver(gw)

        names = sorted(r.json["data"]["name"] for r in receiver.received)
        assert names == ["One", "Two", "Two"]
        ids = [r.headers["webhook-id"] for r in receiver.received]
        assert len(set(ids)) == 3, "a replay is a new message"
        assert gw.webhooks.messages(endpoint.id).count == 3


def test_an_endpoint_failing_for_the_whole_window_is_disabled_with_an_event(
    gw: Groupwire,
) -> None:
    clock = ManualClock()
    gw.webhooks.clock = clock
    with Receiver(status=500) as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        gw.groups.create("Day 0")
        deliver(gw)
        assert gw.webhooks.get(endpoint.id).failing_since == clock.now()

        clock.advance(days=5, seconds=-1)
        gw.groups.create("Day 5 minus a second")
        deliver(gw)
        assert gw.webhooks.get(endpoint.id).enabled
        assert gw.events.list(type="webhook_endpoint.disabled") == []

        clock.advance(seconds=1)
        gw.groups.create("Day 5")
        deliver(gw)

        disabled = gw.webhooks.get(endpoint.id)
        assert not disabled.enabled
        assert "failed since" in (disabled.disabled_reason or "")
        [event] = gw.events.list(type="webhook_endpoint.disabled")
        assert event.subject == endpoint.id
        assert event.data["id"] == endpoint.id and event.data["url"] == receiver.url
        assert event.actor == "groupwire.webhooks"
        sent = len(receiver.received)
        clock.advance(days=1)
        gw.groups.create("After disabling")
        deliver(gw)
        assert len(receiver.received) == sent, "a disabled endpoint is not called"


def test_a_success_ends_the_failure_streak(gw: Groupwire) -> None:
    clock = ManualClock()
    gw.webhooks.clock = clock
    with Receiver(statuses=[500]) as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        gw.groups.create("Fails once")
        deliver(gw)
        assert gw.webhooks.get(endpoint.id).failing_since is not None
        clock.advance(5)
        deliver(gw)
        assert gw.webhooks.get(endpoint.id).failing_since is None
        assert len(receiver.received) == 2


def test_rotating_the_secret_signs_with_both_during_the_grace_period(gw: Groupwire) -> None:
    with Receiver() as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        rotated = gw.webhooks.rotate_secret(endpoint.id)
        assert rotated.secret and rotated.secret != endpoint.secret
        assert gw.webhooks.get(endpoint.id).secret is None
        gw.groups.create("Rotated")
        deliver(gw)
        got = receiver.received[0]
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        Webhook(endpoint.secret).verify(got.body, got.headers)
        Webhook(rotated.secret).verify(got.body, got.headers)


def test_deleting_an_endpoint_removes_its_messages_and_log(gw: Groupwire) -> None:
    with Receiver() as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        gw.groups.create("Soon gone")
        deliver(gw)
        gw.webhooks.delete(endpoint.id)
        assert gw.webhooks.list().count == 0
        with gw.engine.connect() as conn:
            for table in (webhook_message, webhook_attempt):
                assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


def test_ordered_endpoint_holds_a_groups_later_events_until_the_earlier_one_succeeds(
    gw: Groupwire,
) -> None:
    clock = ManualClock()
    gw.webhooks.clock = clock
    failed_once: list[str] = []

    def fail_first_delivery_of_first(got: Received) -> int | None:
        if got.json["data"].get("name") == "First" and not failed_once:
            failed_once.append(got.json["id"])
            return 500
        return None

    with Receiver(status_for=fail_first_delivery_of_first) as receiver:
        endpoint = gw.webhooks.create(receiver.url, ordered=True)
        first = gw.groups.create("First")
        gw.groups.update(first.id, description="second event of the group")
        other = gw.groups.create("Another group")

        assert deliver(gw) == 2  # the head of each group; First's head fails
        assert sorted(r.json["subject"] for r in receiver.received) == sorted([first.id, other.id])
        assert gw.webhooks.deliver_due() == 0, "the later event waits for the failed one"

        clock.advance(5)
        assert gw.webhooks.deliver_due() == 2  # the retry, then the event behind it

        types = [(r.json["subject"], r.json["type"]) for r in receiver.received]
        assert types[2:] == [
            (first.id, "customer_group.created"),
            (first.id, "customer_group.updated"),
        ]
        assert {m.status for m in gw.webhooks.messages(endpoint.id).items} == {"succeeded"}


def test_unordered_endpoint_does_not_hold_later_events(gw: Groupwire) -> None:
    with Receiver(statuses=[500]) as receiver:
        gw.webhooks.create(receiver.url)
        group = gw.groups.create("First")
        gw.groups.update(group.id, description="changed")
        assert deliver(gw) == 2
        assert len(receiver.received) == 2


def test_redirects_are_not_followed_and_big_responses_are_capped(
    database_url: str,
) -> None:
    gw = open_gw(database_url, webhooks_response_excerpt=100, webhooks_response_max_bytes=1000)
    try:
        with (
            Receiver() as target,
            Receiver(
                status=302, headers={"location": "TARGET"}, response_body=b"x" * 200_000
            ) as redirecting,
        ):
            redirecting.response_headers["location"] = target.url
            endpoint = gw.webhooks.create(redirecting.url)
            gw.groups.create("Redirected")
            deliver(gw)
            assert len(redirecting.received) == 1
            assert target.received == []
            [attempt] = gw.webhooks.attempts(endpoint.id).items
            assert attempt.status_code == 302 and not attempt.succeeded
            assert "redirects are not followed" in (attempt.error or "")
            assert attempt.response == "x" * 100
    finally:
        gw.close()


def test_an_address_refused_at_delivery_time_is_not_called(database_url: str) -> None:
    with Receiver() as receiver:
        permissive = open_gw(database_url)
        endpoint = permissive.webhooks.create(receiver.url)
        permissive.close()
        strict = open_gw(database_url, webhooks_allow_private=False, webhooks_allow_http=True)
        try:
            strict.groups.create("Sneaky")
            deliver(strict)
            assert receiver.received == []
            [attempt] = strict.webhooks.attempts(endpoint.id).items
            assert not attempt.succeeded and attempt.status_code is None
            assert "loopback" in (attempt.error or "") and "refused" in (attempt.error or "")
        finally:
            strict.close()


def test_signatures_carry_the_real_time_even_with_a_manual_clock(gw: Groupwire) -> None:
    clock = ManualClock()
    clock.advance(days=3)
    gw.webhooks.clock = clock
    with Receiver() as receiver:
        endpoint = gw.webhooks.create(receiver.url)
        receiver.secret = endpoint.secret
        gw.groups.create("Now")
        deliver(gw)
        assert receiver.received[0].verified, receiver.received[0].verify_error


def test_a_host_name_is_kept_in_the_host_header_while_a_checked_address_is_dialled(
    gw: Groupwire,
) -> None:
    with Receiver() as receiver:  # listens on 127.0.0.1 only; localhost may resolve to ::1 first
        gw.webhooks.create(f"http://localhost:{receiver.port}/hook")
        gw.groups.create("By name")
        deliver(gw)
        [got] = receiver.received
        assert got.headers["host"] == f"localhost:{receiver.port}"


def test_tls_is_verified_against_the_endpoint_host_name_not_the_dialled_address(
    gw: Groupwire, tmp_path: Path
) -> None:
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"),
            *("-keyout", str(key), "-out", str(certificate)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    server_names: list[str | None] = []
    context.sni_callback = lambda _socket, name, _context: server_names.append(name)

    with Receiver(tls=context) as receiver:
        endpoint = gw.webhooks.create(f"https://localhost:{receiver.port}/hook")
        gw.groups.create("Self-signed")
        deliver(gw)

        assert receiver.received == []
        assert server_names and set(server_names) == {"localhost"}
        [attempt] = gw.webhooks.attempts(endpoint.id).items
        assert not attempt.succeeded and attempt.status_code is None
        assert "certificate verify failed" in (attempt.error or ""), attempt.error
