"""Capture from a real Medusa: commit -> Groupwire subscriber latency, and capture speed.

Measures, against a real Medusa 2.21.2 (the test harness starts one unless ``--base-url``,
``--api-key`` and ``--medusa-db`` name a running one):

1. latency of single changes: ``--singles`` customers added to a group one request at a
   time; for each, the time from Medusa's commit (the commit timestamp in the WAL, which is the
   event's ``time``) to the moment an in-process Groupwire subscriber has it: p50, p99, max;
2. a batch add of ``--customers`` customers in one request (one Medusa transaction): time from
   its commit to the last event at the subscriber, and captured changes/s;
3. the baseline: a raw read of the same stretch of the replication stream (a second slot,
   ``pg_logical_slot_peek_binary_changes`` without decoding), and the ratio capture/raw.

    uv run python benchmarks/medusa_capture.py --customers 5000 --singles 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, suppress
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groupwire import Groupwire
from groupwire.domain.models import Event
from groupwire.medusa import CaptureOptions, MedusaCapture
from groupwire.medusa import slot as slots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5000, help="size of the batch add")
    parser.add_argument("--singles", type=int, default=50, help="single adds timed one by one")
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--base-url", help="a running Medusa's URL (else the harness starts one)")
    parser.add_argument("--api-key", help="its secret API key")
    parser.add_argument("--medusa-db", help="its PostgreSQL URL")
    parser.add_argument(
        "--store", default="sqlite:///{tmp}/groupwire.db", help="Groupwire's store URL"
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.base_url:
            base_url, api_key, medusa_db = args.base_url, args.api_key, args.medusa_db
        else:
            from tests.medusa.harness import running_medusa

            print("starting Medusa (the test harness)...", flush=True)
            server = stack.enter_context(running_medusa(tmp / "medusa"))
            base_url, api_key, medusa_db = server.base_url, server.api_key, server.database_url
        run(args, tmp, base_url, api_key, medusa_db)


def run(args: argparse.Namespace, tmp: Path, base_url: str, api_key: str, medusa_db: str) -> None:
    client = httpx.Client(base_url=base_url, auth=(api_key, ""), timeout=120)
    suffix = uuid.uuid4().hex[:8]
    slot, publication, raw_slot = f"bench_{suffix}", f"bench_pub_{suffix}", f"bench_raw_{suffix}"
    conn = slots.connect(medusa_db)
    ids = [f"cus_bench{uuid.uuid4().hex}" for _ in range(args.customers + args.singles)]
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO customer (id, email) VALUES (%s, %s)",
            [(cid, f"{cid}@bench.example") for cid in ids],
        )
    group_id = client.post("/admin/customer-groups", json={"name": f"Bench {suffix}"}).json()[
        "customer_group"
    ]["id"]
    gw = Groupwire.open(args.store.format(tmp=tmp), load_entry_points=False, plugins=[])
    arrivals: dict[str, float] = {}
    times: dict[str, datetime] = {}
    lock = threading.Lock()

    @gw.subscriber("customer_group.customer_added", name="bench", batch=True)
    def record(events: list[Event]) -> None:
        now = time.time()
        with lock:
            for event in events:
                arrivals[event.data["customer_id"]] = now
                times[event.data["customer_id"]] = event.time

    options = CaptureOptions(
        medusa_url=medusa_db, slot=slot, publication=publication, poll_interval=args.poll_interval
    )
    capture = MedusaCapture(gw.service, options)
    stop = threading.Event()
    try:
        capture.install()
        gw.start()
        loop = threading.Thread(target=capture.run, args=(stop,), daemon=True)
        loop.start()

        singles = ids[args.customers :]
        for cid in singles:
            client.post(f"/admin/customer-groups/{group_id}/customers", json={"add": [cid]})
            wait(lambda cid=cid: cid in arrivals, 30)
        latencies = sorted(arrivals[c] - times[c].timestamp() for c in singles)

        conn.execute(
            "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (raw_slot,)
        ).fetchall()
        batch = ids[: args.customers]
        client.post(f"/admin/customer-groups/{group_id}/customers", json={"add": batch})
        wait(lambda: all(c in arrivals for c in batch), 300)
        committed = times[batch[0]].timestamp()
        last = max(arrivals[c] for c in batch)
        started = time.perf_counter()
        rows = conn.execute(
            "SELECT count(*) FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,"
            " 'proto_version', '1', 'publication_names', %s)",
            (raw_slot, publication),
        ).fetchone()
        raw_seconds = time.perf_counter() - started
    finally:
        stop.set()
        capture.close()
        with slots.connect(medusa_db) as admin:
            for name in (slot, raw_slot):
                with suppress(psycopg.Error):
                    admin.execute("SELECT pg_drop_replication_slot(%s)", (name,))
            admin.execute(f'DROP PUBLICATION IF EXISTS "{publication}"')
        gw.close()
        conn.close()
        client.close()

    def ms(value: float) -> str:
        return f"{value * 1000:.0f} ms"

    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"single adds ({len(latencies)}), Medusa commit -> Groupwire subscriber:")
    print(
        f"  p50 {ms(statistics.median(latencies))}, p99 {ms(p99)}, max {ms(latencies[-1])}"
        f"  (poll interval {ms(args.poll_interval)})"
    )
    batch_seconds = last - committed
    messages = int(rows[0]) if rows else 0
    print(f"batch add of {len(batch)} customers (one Medusa transaction, {messages} messages):")
    print(
        f"  commit -> last event at the subscriber {ms(batch_seconds)}"
        f"  = {len(batch) / batch_seconds:,.0f} captured changes/s"
    )
    print(
        f"  raw read of the same stream {ms(raw_seconds)}"
        f" = {messages / raw_seconds:,.0f} messages/s;"
        f" capture takes {batch_seconds / raw_seconds:.1f}x the raw read"
    )


def wait(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("events did not arrive in time")
        time.sleep(0.002)


if __name__ == "__main__":
    main()
