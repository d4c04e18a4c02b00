"""Capture from a real Medusa: commit -> Groupwire subscriber latency, and capture speed.

Measures, against a real Medusa 2.21.2 (the test harness starts one unless ``--base-url``,
``--api-key`` and ``--medusa-db`` name a running one):

1. latency of single changes: ``--singles`` customers added to a group one request at a
   time; for each, the time from Medusa's commit (the commit timestamp in the WAL, which is the
   event's ``time``) to the moment an in-process Groupwire subscriber has it: p50, p99, max;
2. a batch add of ``--customers`` customers in one request (one Medusa transaction). What
   "captured" means: the change is committed in Groupwire's store (its copy, its events and the
   stream position, one Groupwire transaction); the capture time runs from the first byte of
   that transaction read from the stream (its Begin: the server sends a transaction only once
   it has decoded its commit) to that Groupwire commit, so it covers reading, decoding and
   applying. Reported beside it: Medusa's commit -> Groupwire's commit (adds the server's
   decoding), and Medusa's commit -> the last event at the Groupwire subscriber (adds the
   relay's delivery);
3. the baseline, a raw read of the same stretch of the stream through the same streaming
   replication protocol: a second slot created just before the batch, read afterwards by a
   reader that only counts the messages (the server's decoding and sending, nothing
   applied), timed the same way, from the first byte of the transaction to its Commit
   message: changes/s, and the ratio capture/raw of the changes per second (the issue's
   target: >= 0.5). It is read after capture has finished, so that neither slows the other
   (a reader in this process would compete with capture for the GIL);
4. the store's floor: the batch's rows written into the same Groupwire store with the same
   statements capture uses (the membership INSERT per 2,000 ids, the membership map, one run
   of events, the position), in one durable transaction, with nothing read or decoded: how
   long the store alone needs to take that change. Capture cannot be faster than this, nor
   than the raw read; printed as ratios to both;
5. a batch removal of the same customers in one request (one Medusa transaction of DELETEs
   that carry only the membership row's id, resolved through capture's membership map):
   captured time and changes/s, beside a raw read of it from a third slot.
6. customer and address rows in bulk, each case ONE Medusa transaction of ``--customers``
   rows written in SQL: customers inserted, the same customers updated (a name), an address
   inserted for each, those addresses updated (a city), then soft-deleted. Each captured
   (first byte read -> Groupwire commit, as in 2) and printed as a ratio to the membership
   batch of the same run (the issue's target: customer inserts within 2x); for the customer
   inserts, the store's floor too (the same rows, statements and events, nothing read).

    uv run python benchmarks/medusa_capture.py --customers 10000 --singles 100
    uv run python benchmarks/medusa_capture.py --store postgresql+psycopg://127.0.0.1/test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from groupwire import Groupwire
from groupwire.domain import events as ev
from groupwire.domain.changes import Context
from groupwire.domain.models import Customer, Event
from groupwire.medusa import CaptureOptions, MedusaCapture
from groupwire.medusa import slot as slots
from groupwire.medusa.capture import CHUNK_ROWS
from groupwire.medusa.mapping import MedusaTransaction, TableWrites
from groupwire.medusa.stream import ReplicationStream, XLogData
from groupwire.medusa.tables import medusa_membership, medusa_stream
from groupwire.store import bulk, tables
from groupwire.store import repository as repo
from groupwire.store.unit_of_work import UnitOfWork


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000, help="size of the batch add")
    parser.add_argument("--singles", type=int, default=100, help="single adds timed one by one")
    parser.add_argument("--base-url", help="a running Medusa's URL (else the harness starts one)")
    parser.add_argument("--api-key", help="its secret API key")
    parser.add_argument("--medusa-db", help="its PostgreSQL URL")
    parser.add_argument(
        "--store",
        default="sqlite:///{tmp}/groupwire.db",
        help="Groupwire's store URL; a PostgreSQL URL gets a fresh schema of its own",
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
        store = args.store.format(tmp=tmp)
        if store.startswith("postgresql"):
            store = stack.enter_context(postgres_schema(store))
        run(args, store, base_url, api_key, medusa_db)


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A fresh schema on the PostgreSQL server of ``url``, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


class RawReader:
    """Reads a slot through the protocol and only counts messages (a baseline)."""

    def __init__(self, medusa_db: str, slot: str, publication: str) -> None:
        self.stream = ReplicationStream(medusa_db, slot, publication, 0)
        self.messages = 0
        self.first_at = 0.0  # time.perf_counter() of the first message
        self.commit_at = 0.0  # ... and of the Commit that ended the read

    def read_until(self, messages: int, timeout: float) -> None:
        """Read until a Commit after at least ``messages`` messages."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.stream.read(0.5)
            if isinstance(message, XLogData):
                if not self.messages:
                    self.first_at = time.perf_counter()
                self.messages += 1
                if message.data[:1] == b"C" and self.messages >= messages:
                    self.commit_at = time.perf_counter()
                    return
        raise TimeoutError("the raw reader did not see the batch's commit")


def run(args: argparse.Namespace, store: str, base_url: str, api_key: str, medusa_db: str) -> None:
    client = httpx.Client(base_url=base_url, auth=(api_key, ""), timeout=300)
    suffix = uuid.uuid4().hex[:8]
    slot, publication = f"bench_{suffix}", f"bench_pub_{suffix}"
    replay_slot = f"bench_replay_{suffix}"
    removal_slot = f"bench_removal_{suffix}"
    conn = slots.connect(medusa_db)
    ids = [f"cus_bench{uuid.uuid4().hex}" for _ in range(args.customers + args.singles)]
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO customer (id, email) VALUES (%s, %s)",
            [(cid, f"{cid}@bench.example") for cid in ids],
        )
    group_id = client.post("/admin/customer-groups", json={"name": f"Bench {suffix}"}).json()[
        "customer_group"
    ]["id"]
    gw = Groupwire.open(store, load_entry_points=False, plugins=[])
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

    options = CaptureOptions(medusa_url=medusa_db, slot=slot, publication=publication)
    capture = MedusaCapture(gw.service, options)
    applied: list[tuple[int, float, float, float]] = []  # changes, read at, committed at, wall

    steps: dict[str, tuple[float, float]] = {}  # single adds: Begin read, Groupwire commit

    def on_applied(transaction: MedusaTransaction) -> None:
        now, wall = time.perf_counter(), time.time()
        applied.append((len(transaction.changes), transaction.read_at, now, wall))
        if len(transaction.changes) <= 10:
            for change in transaction.changes:
                if change.table == "customer_group_customer" and change.operation == "insert":
                    read_wall = wall - (now - transaction.read_at)
                    steps[str(change.row["customer_id"])] = (read_wall, wall)

    removed: set[str] = set()

    @gw.subscriber("customer_group.customer_removed", name="bench-removed", batch=True)
    def record_removed(events: list[Event]) -> None:
        with lock:
            removed.update(event.data["customer_id"] for event in events)

    capture.on_applied.append(on_applied)
    stop = threading.Event()
    loop: threading.Thread | None = None
    try:
        capture.install()
        gw.start()
        loop = threading.Thread(target=capture.run, args=(stop,), daemon=True)
        loop.start()

        singles = ids[args.customers :]
        answered: dict[str, float] = {}  # when Medusa's API answered the request
        for cid in singles:
            client.post(f"/admin/customer-groups/{group_id}/customers", json={"add": [cid]})
            answered[cid] = time.time()
            wait(lambda cid=cid: cid in arrivals, 30)
        latencies = sorted(arrivals[c] - times[c].timestamp() for c in singles)
        split = {
            "Medusa commit -> its Begin read by capture": [
                steps[c][0] - times[c].timestamp() for c in singles
            ],
            "(Medusa commit -> its API's answer)": [
                answered[c] - times[c].timestamp() for c in singles
            ],
            "Begin read -> Groupwire commit": [steps[c][1] - steps[c][0] for c in singles],
            "Groupwire commit -> subscriber": [arrivals[c] - steps[c][1] for c in singles],
        }

        conn.execute(
            "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (replay_slot,)
        ).fetchall()
        batch = ids[: args.customers]
        client.post(f"/admin/customer-groups/{group_id}/customers", json={"add": batch})
        # a cheap test: the main thread polls it while capture and the relay work
        wait(lambda: len(arrivals) >= len(singles) + len(batch), 300)
        committed = times[batch[0]].timestamp()
        last = max(arrivals[c] for c in batch)

        batch_changes, read_at, gw_committed, gw_committed_wall = max(applied)
        replay = RawReader(medusa_db, replay_slot, publication)
        replay.read_until(len(batch), 300)
        replay_seconds = replay.commit_at - replay.first_at
        replay_messages = replay.messages
        replay.stream.close()

        # 5. the same customers removed in one request: DELETEs carrying only the row id,
        # each resolved through the membership map
        conn.execute(
            "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (removal_slot,)
        ).fetchall()
        applied.clear()
        client.post(f"/admin/customer-groups/{group_id}/customers", json={"remove": batch})
        wait(lambda: len(removed) >= len(batch), 300)
        removal_changes, removal_read_at, removal_committed, _ = max(applied)
        removal_replay = RawReader(medusa_db, removal_slot, publication)
        removal_replay.read_until(len(batch), 300)
        removal_replay_seconds = removal_replay.commit_at - removal_replay.first_at
        removal_replay.stream.close()

        # 6. customer and address rows in bulk
        people = customer_cases(conn, applied, args.customers)
        stop.set()
        loop.join(timeout=30)
        floor_seconds = store_floor(gw, batch, slot)
        people_floor = customers_floor(gw, args.customers)
    finally:
        stop.set()
        if loop is not None:
            loop.join(timeout=30)
        capture.close()
        time.sleep(0.5)  # the walsenders let go of the slots
        with slots.connect(medusa_db) as admin:
            for name in (slot, replay_slot, removal_slot):
                with suppress(psycopg.Error):
                    admin.execute("SELECT pg_drop_replication_slot(%s)", (name,))
            admin.execute(f'DROP PUBLICATION IF EXISTS "{publication}"')
        gw.close()
        conn.close()
        client.close()

    def ms(value: float) -> str:
        return f"{value * 1000:.0f} ms"

    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"Groupwire store: {store.split(':', 1)[0]}")
    print(f"single adds ({len(latencies)}), Medusa commit -> Groupwire subscriber:")
    print(f"  p50 {ms(statistics.median(latencies))}, p99 {ms(p99)}, max {ms(latencies[-1])}")
    for step, values in split.items():
        values.sort()
        step_p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"    {step}: p50 {ms(statistics.median(values))}, p99 {ms(step_p99)}")
    capture_seconds = gw_committed - read_at
    print(f"batch add of {len(batch)} customers (one Medusa transaction, {batch_changes} rows):")
    print(
        f"  captured (first byte read -> Groupwire commit of copy, events, position):"
        f" {ms(capture_seconds)} = {len(batch) / capture_seconds:,.0f} captured changes/s"
    )
    print(
        f"  raw read of the same stretch ({replay_messages} messages, second slot, first byte"
        f" -> Commit): {ms(replay_seconds)} = {len(batch) / replay_seconds:,.0f} changes/s"
    )
    print(
        f"  capture / raw replay (changes/s): {replay_seconds / capture_seconds:.2f}x"
        "  (target >= 0.5x)"
    )
    print(
        f"  the store's floor (the same rows, statements and durable commit, nothing read):"
        f" {ms(floor_seconds)} = {floor_seconds / replay_seconds:.1f}x the raw read;"
        f" capture takes {capture_seconds / floor_seconds:.2f}x the store's floor"
    )
    print(f"  Medusa commit -> Groupwire commit {ms(gw_committed_wall - committed)}")
    print(f"  Medusa commit -> last event at the Groupwire subscriber {ms(last - committed)}")
    removal_seconds = removal_committed - removal_read_at
    print(
        f"batch remove of the same {len(batch)} customers"
        f" (one Medusa transaction, {removal_changes} rows):"
    )
    print(
        f"  captured: {ms(removal_seconds)} = {len(batch) / removal_seconds:,.0f} captured"
        f" changes/s; raw read {ms(removal_replay_seconds)};"
        f" capture / raw replay {removal_replay_seconds / removal_seconds:.2f}x"
    )
    print(
        f"customer and address rows, {args.customers} a Medusa transaction (captured: first"
        " byte read -> Groupwire commit; x the membership batch above):"
    )
    for case, seconds in people.items():
        print(f"  {case}: {ms(seconds)} = {seconds / capture_seconds:.2f}x")
    inserted = people[CUSTOMERS_INSERTED]
    print(
        f"  the store's floor for the customer inserts (the same rows and events, nothing"
        f" read): {ms(people_floor)}; capture takes {inserted / people_floor:.2f}x it"
        "  (target for the inserts: <= 2x the membership batch)"
    )


def store_floor(gw: Groupwire, customer_ids: list[str], slot: str) -> float:
    """Seconds the store takes to write what capture writes for a batch add of
    ``customer_ids`` (already members of the captured group: here they join a new group),
    with the same statements: the membership INSERT per CHUNK_ROWS ids, the membership map,
    one run of events and the position update, in one durable transaction."""
    group = gw.groups.create(name=f"Floor {uuid.uuid4().hex[:8]}")
    uow = UnitOfWork(gw.service.engine, source="floor", context=Context(), durable=True)
    with uow:
        started = time.perf_counter()
        conn = uow.connection
        for start in range(0, len(customer_ids), CHUNK_ROWS):
            piece = customer_ids[start : start + CHUNK_ROWS]
            repo.add_live_memberships(conn, group.id, piece, uow.now, None)
            rows = [(f"floor_{uuid.uuid4().hex}", group.id, cid) for cid in piece]
            bulk.insert_rows(
                conn, medusa_membership, ("id", "customer_group_id", "customer_id"), rows
            )
        uow.emit(ev.customers_added(group.id, customer_ids, uow.now))
        conn.execute(medusa_stream.update().where(medusa_stream.c.slot == slot).values(xid=0))
        uow.commit()
        return time.perf_counter() - started


CUSTOMERS_INSERTED = "customers inserted"


def customer_cases(
    conn: psycopg.Connection[object],
    applied: list[tuple[int, float, float, float]],
    count: int,
) -> dict[str, float]:
    """Each case one Medusa transaction of ``count`` customer or address rows; returns the
    seconds capture took for each (its Begin read -> its Groupwire commit)."""
    tag = uuid.uuid4().hex[:8]
    ids = [f"cus_bulk{tag}{n:07d}" for n in range(count)]
    addresses = [f"cuaddr_bulk{tag}{n:07d}" for n in range(count)]
    cases = {
        CUSTOMERS_INSERTED: (
            "INSERT INTO customer (id, email, first_name, last_name, metadata)"
            " VALUES (%s, %s, 'Ada', %s, '{\"tier\": \"gold\"}')",
            [(cid, f"{cid}@bulk.example", f"L{n}") for n, cid in enumerate(ids)],
        ),
        "customers updated (first_name)": (
            "UPDATE customer SET first_name = %s, updated_at = now() WHERE id = %s",
            [(f"F{n}", cid) for n, cid in enumerate(ids)],
        ),
        "addresses inserted (one per customer)": (
            "INSERT INTO customer_address (id, customer_id, city, country_code, address_1)"
            " VALUES (%s, %s, 'Paris', 'fr', '1 rue de Rivoli')",
            list(zip(addresses, ids, strict=True)),
        ),
        "addresses updated (city)": (
            "UPDATE customer_address SET city = %s, updated_at = now() WHERE id = %s",
            [(f"City {n}", aid) for n, aid in enumerate(addresses)],
        ),
        "addresses soft-deleted": (
            "UPDATE customer_address SET deleted_at = now() WHERE id = %s",
            [(aid,) for aid in addresses],
        ),
    }
    seconds: dict[str, float] = {}
    for case, (statement, rows) in cases.items():
        seen = len(applied)
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(statement, rows)
        wait(lambda seen=seen: any(c >= count for c, *_ in applied[seen:]), 600)
        _, read_at, committed_at, _ = next(a for a in applied[seen:] if a[0] >= count)
        seconds[case] = committed_at - read_at
    return seconds


def customers_floor(gw: Groupwire, count: int) -> float:
    """Seconds the store takes to write ``count`` new customers and their ``created`` events
    with the statements capture uses (:class:`TableWrites`: one multi-row insert, a COPY on
    PostgreSQL; the events), in one durable transaction, nothing read or decoded."""
    tag = uuid.uuid4().hex[:8]
    uow = UnitOfWork(gw.service.engine, source="floor", context=Context(), durable=True)
    with uow:
        started = time.perf_counter()
        writes = TableWrites(tables.customer)
        for n in range(count):
            customer = Customer(
                id=f"cus_floor{tag}{n:07d}",
                email=f"floor{tag}{n}@bulk.example",
                first_name="Ada",
                last_name=f"L{n}",
                metadata={"tier": "gold"},
                created_at=uow.now,
                updated_at=uow.now,
            )
            writes.put(customer, new=True)
            uow.emit(ev.customer_created(customer))
        writes.write(uow.connection)
        uow.commit()
        return time.perf_counter() - started


def wait(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("events did not arrive in time")
        time.sleep(0.002)


if __name__ == "__main__":
    main()
