"""Smart groups inside Medusa: an order committed -> the customer a member of Medusa's group.

Against a real Medusa 2.21.2 (the test harness starts one), a VIP group with the rule
``{"orders.total": {"currency": "eur", "$gte": 1000}}`` is kept by the reconciler beside
capture. For each of ``--orders`` customers a draft order of 1,200 EUR is converted to an
order; from Medusa's commit of that order (its commit timestamp in the WAL, the captured
``order.recorded`` event's ``time``) it measures the time to:

1. the baseline: the ``order.recorded`` event at an in-process Groupwire subscriber (capture
   and relay: what any reaction to an order waits for);
2. the customer's row in Medusa's ``customer_group_customer`` (read, polled every 5 ms):
   the reconciler's request answered by Medusa;

and prints p50/p99 of both and their ratio.

    uv run python benchmarks/medusa_smart_groups.py --orders 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groupwire import Groupwire
from groupwire.domain.models import Event
from groupwire.medusa import CaptureOptions, MedusaCapture
from groupwire.medusa import slot as slots
from groupwire.medusa.reconciler import ReconcilerOptions, reconcile_medusa
from groupwire.medusa.smart_groups import set_rule
from groupwire.store import repository as repo

VIP = {"orders.total": {"currency": "eur", "$gte": 1000}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20, help="orders (one customer each)")
    parser.add_argument(
        "--store", default="sqlite:///{tmp}/groupwire.db", help="Groupwire's store URL"
    )
    parser.add_argument("--base-url", help="a running Medusa's URL (else the harness starts one)")
    parser.add_argument("--api-key", help="its secret API key")
    parser.add_argument("--medusa-db", help="its PostgreSQL URL")
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if not args.base_url:
            from tests.medusa.harness import running_medusa

            print("starting Medusa (the test harness)...", flush=True)
            server = stack.enter_context(running_medusa(tmp / "medusa"))
            args.base_url, args.api_key = server.base_url, server.api_key
            args.medusa_db = server.database_url
        run(args, tmp)


def ok(response: httpx.Response) -> dict:  # type: ignore[type-arg]
    assert response.status_code == 200, response.text
    return dict(response.json())


def run(args: argparse.Namespace, tmp: Path) -> None:
    client = httpx.Client(base_url=args.base_url, auth=(args.api_key, ""), timeout=120)
    suffix = uuid.uuid4().hex[:8]
    slot, publication = f"bench_{suffix}", f"bench_pub_{suffix}"
    region = ok(
        client.post(
            "/admin/regions",
            json={"name": f"Europe {suffix}", "currency_code": "eur", "countries": []},
        )
    )["region"]["id"]
    group_id = ok(client.post("/admin/customer-groups", json={"name": f"VIP {suffix}"}))[
        "customer_group"
    ]["id"]
    gw = Groupwire.open(args.store.format(tmp=tmp), load_entry_points=False, plugins=[])
    placed: dict[str, tuple[datetime, float]] = {}  # customer -> (commit time, arrival)
    lock = threading.Lock()

    @gw.subscriber("order.recorded", name="bench", batch=True)
    def record(events: list[Event]) -> None:
        now = time.time()
        with lock:
            for event in events:
                placed.setdefault(str(event.data["customer_id"]), (event.time, now))

    options = CaptureOptions(medusa_url=args.medusa_db, slot=slot, publication=publication)
    capture = MedusaCapture(gw.service, options)
    stop = threading.Event()
    thread: threading.Thread | None = None
    try:
        capture.install()
        while True:  # the group in the copy before its rule
            with gw.engine.connect() as conn:
                if repo.get_group(conn, group_id) is not None:
                    break
            capture.pump(0.1)
        set_rule(gw.engine, group_id, VIP, datetime.now(UTC))
        reconcile_medusa(
            gw,
            ReconcilerOptions(
                api_url=args.base_url,
                api_key=args.api_key,
                medusa_url=args.medusa_db,
                slot=slot,
                max_requests_per_second=50,
            ),
        )
        gw.start()
        thread = threading.Thread(target=capture.run, args=(stop,), daemon=True)
        thread.start()
        baseline: list[float] = []
        member: list[float] = []
        with slots.connect(args.medusa_db) as conn:
            for _ in range(args.orders):
                email = f"{uuid.uuid4().hex[:10]}@bench.example"
                customer = ok(client.post("/admin/customers", json={"email": email}))["customer"][
                    "id"
                ]
                draft = ok(
                    client.post(
                        "/admin/draft-orders",
                        json={
                            "region_id": region,
                            "customer_id": customer,
                            "email": email,
                            "items": [{"title": "Gift", "quantity": 1, "unit_price": 1200}],
                        },
                    )
                )["draft_order"]["id"]
                ok(client.post(f"/admin/draft-orders/{draft}/convert-to-order"))
                deadline = time.monotonic() + 60
                while True:
                    row = conn.execute(
                        "SELECT count(*) FROM customer_group_customer WHERE customer_group_id"
                        " = %s AND customer_id = %s AND deleted_at IS NULL",
                        (group_id, customer),
                    ).fetchone()
                    if row and row[0]:
                        seen = time.time()
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{customer} never joined")
                    time.sleep(0.005)
                while customer not in placed:
                    time.sleep(0.005)
                committed, arrived = placed[customer]
                baseline.append(arrived - committed.timestamp())
                member.append(seen - committed.timestamp())
        report(baseline, member)
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=60)
        capture.close()
        with slots.connect(args.medusa_db) as conn:
            slots.drop(conn, slot, publication)
        gw.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(baseline: list[float], member: list[float]) -> None:
    def ms(value: float) -> str:
        return f"{value * 1000:.0f} ms"

    print(f"{len(member)} orders, from Medusa's commit of the order:")
    for name, values in (
        ("order.recorded at a subscriber", baseline),
        ("member in Medusa", member),
    ):
        print(
            f"  {name:32} p50 {ms(statistics.median(values))}  p99 {ms(pct(values, 0.99))}"
            f"  max {ms(max(values))}"
        )
    ratio = statistics.median(member) / max(statistics.median(baseline), 1e-6)
    print(f"  ratio (p50 member / p50 baseline): {ratio:.1f}x")


if __name__ == "__main__":
    main()
