"""Publishing into Medusa's event bus: commit -> last job run by Medusa's own subscriber.

Against a real Medusa 2.21.2 (the test harness starts one, with its Redis event bus and the
recording subscriber ``src/subscribers/record.ts``), a batch add of ``--customers`` customers
in one request (one Medusa transaction) is captured and published. From Medusa's commit (the
commit timestamp in the WAL, the events' ``time``) it measures the time to:

1. the baseline: the last event at an in-process Groupwire subscriber (capture + relay);
2. the last job added to Medusa's BullMQ queue by the publisher (``addBulk``);
3. the last job run by Medusa's subscriber (seen in the file it appends to);

and prints 3 against the baseline, and the jobs/s Medusa's worker ran.

    uv run python benchmarks/medusa_publish.py --customers 10000
"""

from __future__ import annotations

import argparse
import json
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
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groupwire import Groupwire
from groupwire.domain.models import Event
from groupwire.medusa import CaptureOptions, MedusaCapture
from groupwire.medusa import slot as slots
from groupwire.medusa.publish import PublishOptions, publish_to_medusa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10000, help="size of the batch add")
    parser.add_argument(
        "--store", default="sqlite:///{tmp}/groupwire.db", help="Groupwire's store URL"
    )
    parser.add_argument("--base-url", help="a running Medusa's URL (else the harness starts one)")
    parser.add_argument("--api-key", help="its secret API key")
    parser.add_argument("--medusa-db", help="its PostgreSQL URL")
    parser.add_argument("--medusa-redis", help="its event bus's Redis URL")
    parser.add_argument("--recorded", type=Path, help="the file its record.ts subscriber fills")
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if not args.base_url:
            from tests.medusa.harness import running_medusa

            print("starting Medusa (the test harness)...", flush=True)
            server = stack.enter_context(running_medusa(tmp / "medusa"))
            args.base_url, args.api_key = server.base_url, server.api_key
            args.medusa_db, args.medusa_redis = server.database_url, server.redis_url
            args.recorded = server.events_path
        run(args, tmp)


class RecordedTail:
    """Follows the recording subscriber's file, stamping when each of our jobs appeared."""

    def __init__(self, path: Path, group_id: str) -> None:
        self.path = path
        self.group_id = group_id
        self.offset = 0
        self.partial = b""
        self.seen: dict[str, float] = {}

    def read(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        if not chunk:
            return
        now = time.time()
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            record = json.loads(line)
            metadata = record.get("metadata") or {}
            data = record.get("data") or {}
            if metadata.get("source") == "groupwire" and data.get("group_id") == self.group_id:
                self.seen.setdefault(metadata["event_id"], now)


def run(args: argparse.Namespace, tmp: Path) -> None:
    medusa_db: str = args.medusa_db
    client = httpx.Client(base_url=args.base_url, auth=(args.api_key, ""), timeout=300)
    suffix = uuid.uuid4().hex[:8]
    slot, publication = f"bench_{suffix}", f"bench_pub_{suffix}"
    ids = [f"cus_bench{uuid.uuid4().hex}" for _ in range(args.customers)]
    with slots.connect(medusa_db) as conn, conn.cursor() as cursor:
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
                arrivals[event.id] = now
                times[event.id] = event.time

    options = PublishOptions(redis_url=args.medusa_redis)
    publisher = publish_to_medusa(gw, options)
    capture = MedusaCapture(
        gw.service,
        CaptureOptions(
            medusa_url=medusa_db,
            slot=slot,
            publication=publication,
        ),
    )
    tail = RecordedTail(args.recorded, group_id)
    stop = threading.Event()
    try:
        capture.install()
        gw.start()
        threading.Thread(target=capture.run, args=(stop,), daemon=True).start()
        tail.read()
        base = publisher.published
        # Medusa answers the request late (its one process also runs the jobs): its commit,
        # not its answer, is the start, so the request runs aside while this thread watches.
        request = threading.Thread(
            target=client.post,
            args=(f"/admin/customer-groups/{group_id}/customers",),
            kwargs={"json": {"add": ids}},
            daemon=True,
        )
        request.start()
        queued_at = 0.0
        deadline = time.monotonic() + 900
        while len(tail.seen) < len(ids):
            if not queued_at and publisher.published - base >= len(ids):
                queued_at = time.time()
            tail.read()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(tail.seen)} of {len(ids)} jobs ran in Medusa")
            time.sleep(0.005)
        queued_at = queued_at or time.time()
        request.join(timeout=300)
        bus = redis.Redis.from_url(args.medusa_redis)
        job_bytes = sorted(
            int(bus.memory_usage(f"{options.prefix}:{options.queue}:{event_id}") or 0)
            for event_id in list(arrivals)[:: max(1, len(arrivals) // 100)]
        )
        bus.close()
    finally:
        stop.set()
        capture.close()
        with slots.connect(medusa_db) as admin:
            with suppress(psycopg.Error):
                admin.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            admin.execute(f'DROP PUBLICATION IF EXISTS "{publication}"')
        gw.close()
        client.close()

    committed = min(t.timestamp() for t in times.values())
    baseline = max(arrivals.values()) - committed
    queued = queued_at - committed
    medusa_last = max(tail.seen.values()) - committed
    medusa_first = min(tail.seen.values()) - committed

    def ms(value: float) -> str:
        return f"{value * 1000:,.0f} ms"

    print(f"batch add of {len(ids)} customers (one Medusa transaction), from Medusa's commit:")
    print(f"  baseline: last event at a Groupwire subscriber   {ms(baseline)}")
    print(f"  last job added to Medusa's queue (addBulk)       {ms(queued)}")
    print(f"  first job run by Medusa's subscriber             {ms(medusa_first)}")
    print(f"  last job run by Medusa's subscriber              {ms(medusa_last)}")
    print(
        f"  Medusa's subscriber done at {medusa_last / baseline:.1f}x the baseline;"
        f" Medusa's worker ran {len(ids) / (medusa_last - medusa_first):,.0f} jobs/s"
    )
    print(
        f"  a completed job kept for the dedup window takes {statistics.median(job_bytes):,.0f}"
        " bytes of Medusa's Redis (median of a sample)"
    )


if __name__ == "__main__":
    main()
