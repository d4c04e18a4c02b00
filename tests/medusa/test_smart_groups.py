"""Smart groups inside a running Medusa store: the reconciler makes a rule's members real
through Medusa's Admin API, and capture brings them back as events with ``reason: "rule"``.

Medusa is real (the harness) and driven through its own Admin API only; Groupwire's store is a
PostgreSQL schema of its own; capture runs in a thread as ``groupwire medusa capture
--reconcile`` runs it. Medusa's ``customer_group_customer`` table is read (never written) to
count membership rows: a double add shows there only.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from groupwire import Groupwire
from groupwire.domain.errors import NotFound
from groupwire.medusa import reconciler as rec
from groupwire.medusa import slot as slots
from groupwire.medusa.publish import PublishOptions, publish_to_medusa
from groupwire.medusa.reconciler import MedusaReconciler, ReconcilerOptions, reconcile_medusa
from groupwire.medusa.smart_groups import set_rule
from tests.medusa.capturing import Captured, create_group, drop_slot, new_names, ok
from tests.medusa.harness import MedusaServer
from tests.medusa.test_capture_orders import cancel, convert, create_customer, create_draft

pytestmark = pytest.mark.medusa

VIP = {"orders.total": {"currency": "eur", "$gte": 1000}}


def create_region(medusa: MedusaServer) -> str:
    body = {"name": f"Europe {uuid.uuid4().hex[:6]}", "currency_code": "eur", "countries": []}
    return str(ok(medusa.client.post("/admin/regions", json=body))["region"]["id"])


def options(medusa: MedusaServer, captured: Captured, **more: Any) -> ReconcilerOptions:
    values: dict[str, Any] = {
        "api_url": medusa.base_url,
        "api_key": medusa.api_key,
        "medusa_url": medusa.database_url,
        "slot": captured.options.slot,
        "full_pass_seconds": 3.0,
        "settle_seconds": 5.0,
        "name": uuid.uuid4().hex[:12],
    }
    values.update(more)
    return ReconcilerOptions(**values)


@contextmanager
def running(captured: Captured) -> Iterator[None]:
    """Capture pumping in a thread (as the CLI runs it) until the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=captured.capture.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


def wait_for(what: Callable[[], bool], timeout: float = 30.0, step: float = 0.02) -> float:
    """Seconds until ``what()`` holds (fails after ``timeout``)."""
    started = time.monotonic()
    while not what():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(step)
    return time.monotonic() - started


def medusa_members(medusa: MedusaServer, group_id: str) -> set[str]:
    """The group's members as Medusa's API reads them."""
    found = ok(medusa.client.get("/admin/customers", params={"groups": group_id, "limit": 1000}))
    return {c["id"] for c in found["customers"]}


def rows(captured: Captured, group_id: str, customer_id: str) -> int:
    """Live rows of the pair in Medusa's own table."""
    return int(
        captured.sql(
            "SELECT count(*) FROM customer_group_customer WHERE customer_group_id = %s "
            "AND customer_id = %s AND deleted_at IS NULL",
            (group_id, customer_id),
        )[0][0]
    )


def membership_events(captured: Captured, mark: int, group_id: str) -> list[dict[str, Any]]:
    return [
        {"type": t, **d}
        for t, d in captured.events_since(mark)
        if t.startswith("customer_group.customer_") and d.get("group_id") == group_id
    ]


def smart_group(captured: Captured, medusa: MedusaServer, rule: Any = VIP) -> str:
    """A group made in Medusa, captured, with ``rule`` set on it."""
    group_id = str(create_group(medusa)["id"])
    captured.sync()
    set_rule(captured.gw.engine, group_id, rule, datetime.now(UTC))
    return group_id


def test_given_a_vip_rule_when_an_order_crosses_it_then_medusa_has_the_member_until_cancel(
    captured: Captured, medusa: MedusaServer
) -> None:
    region = create_region(medusa)
    group_id = smart_group(captured, medusa)
    reconciler = reconcile_medusa(captured.gw, options(medusa, captured))
    publish_to_medusa(captured.gw, PublishOptions(redis_url=medusa.redis_url))
    captured.gw.start()
    latencies: list[float] = []
    with running(captured):
        for _ in range(3):
            customer = create_customer(medusa)
            mark = captured.mark()
            small = create_draft(medusa, region, customer, 300)
            convert(medusa, small)  # 300 EUR: below the rule
            draft = create_draft(medusa, region, customer, 1200)
            convert(medusa, draft)
            started = time.monotonic()
            wait_for(lambda c=customer: c in medusa_members(medusa, group_id))  # type: ignore[misc]
            latencies.append(time.monotonic() - started)
            assert rows(captured, group_id, customer) == 1
            wait_for(lambda m=mark: len(membership_events(captured, m, group_id)) >= 1)
            (joined,) = membership_events(captured, mark, group_id)
            assert joined["type"] == "customer_group.customer_added"
            assert joined["customer_id"] == customer
            assert joined["reason"] == "rule"
            assert joined["rule_version"] == 1
            assert joined["trigger"] in ("order_placed", "order_updated")
            heard = medusa.wait_for_recorded(  # Medusa's own subscriber, through its bus
                lambda e, c=customer: (
                    e["name"] == "customer_group.customer_added"  # type: ignore[misc]
                    and e["data"].get("customer_id") == c
                )
            )
            assert heard[0]["data"]["reason"] == "rule"

            mark = captured.mark()
            cancel(medusa, draft)  # the draft's id is the order's
            wait_for(lambda c=customer: c not in medusa_members(medusa, group_id))  # type: ignore[misc]
            assert rows(captured, group_id, customer) == 0
            wait_for(lambda m=mark: len(membership_events(captured, m, group_id)) >= 1)
            (left,) = membership_events(captured, mark, group_id)
            assert left["type"] == "customer_group.customer_removed"
            assert (left["customer_id"], left["reason"]) == (customer, "rule")
            assert left["trigger"] in ("order_canceled", "order_updated")
    assert reconciler.options.name
    latencies.sort()
    print(
        f"\norder committed -> member in Medusa's group: p50 {statistics.median(latencies):.3f} s,"
        f" max {latencies[-1]:.3f} s over {len(latencies)} orders"
    )


def test_given_a_smart_group_when_a_non_matching_customer_is_added_by_hand_then_it_is_removed(
    captured: Captured, medusa: MedusaServer
) -> None:
    group_id = smart_group(captured, medusa)
    reconciler = reconcile_medusa(captured.gw, options(medusa, captured))
    captured.gw.start()
    customer = create_customer(medusa)
    with running(captured):
        ok(
            medusa.client.post(
                f"/admin/customer-groups/{group_id}/customers", json={"add": [customer]}
            )
        )
        wait_for(lambda: customer not in medusa_members(medusa, group_id))
        wait_for(lambda: rows(captured, group_id, customer) == 0)
    status = rec.reconciler_status(captured.gw.engine, reconciler.options.name)
    assert status is not None and status["reverted"] >= 1 and status["removed"] >= 1


def test_given_a_request_whose_capture_has_not_come_when_a_new_reconciler_passes_then_no_double_add(
    captured: Captured, medusa: MedusaServer
) -> None:
    """A reconciler that posted an add and died before capture saw it: the next one (fresh
    memory) must not add again; once capture runs, exactly one row and one event."""
    region = create_region(medusa)
    group_id = smart_group(captured, medusa)
    customer = create_customer(medusa)
    convert(medusa, create_draft(medusa, region, customer, 1500))
    captured.sync()  # the order fact is in the copy; capture then stops (not running)
    mark = captured.mark()
    first = MedusaReconciler(captured.gw.engine, options(medusa, captured, name="crash"))
    assert first.reconcile(full=True).added >= 1  # (customers of earlier tests may match)
    first.client.close()  # "killed" here: Medusa has the row, the copy does not yet
    assert rows(captured, group_id, customer) == 1
    again = MedusaReconciler(captured.gw.engine, options(medusa, captured, name="crash"))
    result = again.reconcile(full=True)
    assert (result.added, result.in_flight) == (0, 1)
    assert rows(captured, group_id, customer) == 1
    captured.sync()
    assert again.reconcile(full=True).added == 0
    again.client.close()
    assert rows(captured, group_id, customer) == 1
    (joined,) = membership_events(captured, mark, group_id)
    assert (joined["customer_id"], joined["reason"], joined["trigger"]) == (
        customer,
        "rule",
        "reconcile",
    )


# --- a sale price list keyed on the smart group -----------------------------------------------


def store_customer(medusa: MedusaServer, key: str) -> tuple[str, str]:
    """A customer registered through Medusa's store API: (id, its token)."""
    email, password = f"{uuid.uuid4().hex[:10]}@shop.example", "secret-password"
    body = {"email": email, "password": password}
    with httpx.Client(base_url=medusa.base_url, timeout=60) as client:
        registered = ok(client.post("/auth/customer/emailpass/register", json=body))["token"]
        created = ok(
            client.post(
                "/store/customers",
                json={"email": email},
                headers={"x-publishable-api-key": key, "authorization": f"Bearer {registered}"},
            )
        )["customer"]["id"]
        token = ok(client.post("/auth/customer/emailpass", json=body))["token"]
    return str(created), str(token)


def store_price(medusa: MedusaServer, key: str, token: str, region: str, product: str) -> float:
    with httpx.Client(base_url=medusa.base_url, timeout=60) as client:
        found = ok(
            client.get(
                f"/store/products/{product}",
                params={"region_id": region, "fields": "*variants.calculated_price"},
                headers={"x-publishable-api-key": key, "authorization": f"Bearer {token}"},
            )
        )
    price = found["product"]["variants"][0]["calculated_price"]["calculated_amount"]
    return float(price)


def test_given_a_sale_price_list_on_the_smart_group_then_the_rule_gives_the_customer_its_price(
    captured: Captured, medusa: MedusaServer
) -> None:
    region = create_region(medusa)
    channel = ok(medusa.client.get("/admin/sales-channels"))["sales_channels"][0]["id"]
    key = ok(medusa.client.post("/admin/api-keys", json={"title": "store", "type": "publishable"}))[
        "api_key"
    ]
    ok(medusa.client.post(f"/admin/api-keys/{key['id']}/sales-channels", json={"add": [channel]}))
    product = ok(
        medusa.client.post(
            "/admin/products",
            json={
                "title": f"Shirt {uuid.uuid4().hex[:6]}",
                "status": "published",
                "options": [{"title": "Size", "values": ["M"]}],
                "variants": [
                    {
                        "title": "M",
                        "options": {"Size": "M"},
                        "manage_inventory": False,
                        "prices": [{"amount": 100, "currency_code": "eur"}],
                    }
                ],
                "sales_channels": [{"id": channel}],
            },
        )
    )["product"]
    group_id = smart_group(captured, medusa)
    ok(
        medusa.client.post(
            "/admin/price-lists",
            json={
                "title": "VIP",
                "description": "vip",
                "type": "sale",
                "status": "active",
                "rules": {"customer.groups.id": [group_id]},
                "prices": [
                    {
                        "variant_id": product["variants"][0]["id"],
                        "amount": 80,
                        "currency_code": "eur",
                    }
                ],
            },
        )
    )
    customer, token = store_customer(medusa, key["token"])
    reconcile_medusa(captured.gw, options(medusa, captured))
    captured.gw.start()
    with running(captured):
        assert store_price(medusa, key["token"], token, region, product["id"]) == 100
        order = create_draft(medusa, region, customer, 1200)
        convert(medusa, order)
        wait_for(lambda: customer in medusa_members(medusa, group_id))
        assert store_price(medusa, key["token"], token, region, product["id"]) == 80
        cancel(medusa, order)
        wait_for(lambda: customer not in medusa_members(medusa, group_id))
        assert store_price(medusa, key["token"], token, region, product["id"]) == 100


# --- the process killed between its request and capture ---------------------------------------


def start_capture(
    medusa: MedusaServer, store_url: str, slot: str, publication: str, log: Path
) -> subprocess.Popen[bytes]:
    command = [
        *(sys.executable, "-m", "groupwire.cli", "--db", store_url, "medusa", "capture"),
        *("--medusa-url", medusa.database_url, "--slot", slot, "--publication", publication),
        *("--reconcile", "--medusa-api", medusa.base_url, "--medusa-api-key", medusa.api_key),
        *("--full-pass-seconds", "1"),
    ]
    env = {**os.environ, "GROUPWIRE_LOAD_ENTRY_POINTS": "false"}
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


@pytest.mark.slow
def test_given_capture_reconcile_killed_after_its_request_then_the_next_one_adds_nothing_twice(
    medusa: MedusaServer, store_url: str, tmp_path: Path
) -> None:
    """``groupwire medusa capture --reconcile`` SIGKILLed as soon as Medusa holds the first
    row it asked for (before capture brought the rows back), then started again: every
    pair has exactly one row in Medusa and one ``customer_added`` (reason rule)."""
    domain = f"{uuid.uuid4().hex[:8]}.example"
    customers = [
        str(
            ok(medusa.client.post("/admin/customers", json={"email": f"c{i}@{domain}"}))[
                "customer"
            ]["id"]
        )
        for i in range(30)
    ]
    group_id = str(create_group(medusa)["id"])
    slot, publication = new_names()
    gw = Groupwire.open(store_url, load_entry_points=False, plugins=[])
    log = tmp_path / "capture.log"
    process = start_capture(medusa, store_url, slot, publication, log)
    try:
        wait_for(lambda: _in_copy(gw, group_id), 60)
        set_rule(gw.engine, group_id, {"email": {"$like": f"%@{domain}"}}, datetime.now(UTC))
        wait_for(lambda: _medusa_rows(medusa, group_id) > 0, 60, step=0.002)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process = start_capture(medusa, store_url, slot, publication, log)
        wait_for(lambda: len(gw.groups.members(group_id)) == len(customers), 90)
        time.sleep(3)  # a few more passes of the reconciler
        counts = _medusa_pairs(medusa, group_id)
        assert counts == {c: 1 for c in customers}, log.read_text()[-3000:]
        added = [
            e.data
            for e in gw.events.list(type="customer_group.customer_added", limit=None)
            if e.data["group_id"] == group_id
        ]
        assert sorted(d["customer_id"] for d in added) == sorted(customers)
        assert {d.get("reason") for d in added} == {"rule"}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        gw.close()
        drop_slot(medusa.database_url, slot, publication)


def _in_copy(gw: Groupwire, group_id: str) -> bool:
    try:
        gw.groups.get(group_id)
    except NotFound:
        return False
    return True


def _medusa_rows(medusa: MedusaServer, group_id: str) -> int:
    return sum(_medusa_pairs(medusa, group_id).values())


def _medusa_pairs(medusa: MedusaServer, group_id: str) -> dict[str, int]:
    with psycopg.connect(slots._libpq_url(medusa.database_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT customer_id, count(*) FROM customer_group_customer"
            " WHERE customer_group_id = %s AND deleted_at IS NULL GROUP BY customer_id",
            (group_id,),
        ).fetchall()
    return {str(c): int(n) for c, n in rows}
