"""End-to-end throughput and latency through Redis Streams, against raw XADD + XREADGROUP.

    uv run python benchmarks/redis_throughput.py [--events 40000] [--workers 1,2,4]

Baseline (same run, same Redis): one process XADDs N small entries into 8 streams in
pipelined batches while W processes XREADGROUP + XACK them; events/s from the first XADD to
the last XACK.

Groupwire: a producer process commits membership changes (500 per transaction) to
PostgreSQL with the relay running in it (as an API server would); W worker processes run a
subscriber that counts events. Throughput is events/s from the first commit to the last
handler call. Latency (event time -> end of handler) is measured in a second phase where the
producer commits at half the 1-worker throughput, in transactions of 25 events.

Prints each figure and its ratio to the baseline with the same number of consumers.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import redis
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PG = os.environ.get("GROUPWIRE_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
REDIS = os.environ.get("GROUPWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
STREAMS = 8


# --- raw baseline --------------------------------------------------------------------------


def raw_consumer(prefix: str, total: int, done: mp.Queue) -> None:
    client = redis.Redis.from_url(REDIS)
    keys = {f"{prefix}raw:{n}": ">" for n in range(STREAMS)}
    name = f"c{os.getpid()}"
    count = 0
    while True:
        reply = client.xreadgroup("bench", name, keys, count=500, block=200)
        if not reply:
            if int(client.get(f"{prefix}raw:count") or 0) >= total:
                break
            continue
        pipe = client.pipeline(transaction=False)
        for key, entries in reply:
            pipe.xack(key, "bench", *[entry_id for entry_id, _ in entries])
            count += len(entries)
        pipe.incrby(f"{prefix}raw:count", sum(len(e) for _, e in reply))
        pipe.execute()
    done.put(time.time())


def raw_run(total: int, consumers: int) -> float:
    client = redis.Redis.from_url(REDIS)
    prefix = f"gw:bench:{uuid.uuid4().hex[:8]}:"
    for n in range(STREAMS):
        client.xgroup_create(f"{prefix}raw:{n}", "bench", id="0", mkstream=True)
    done: mp.Queue = mp.Queue()
    procs = [mp.Process(target=raw_consumer, args=(prefix, total, done)) for _ in range(consumers)]
    for p in procs:
        p.start()
    time.sleep(1.0)
    payload = "x" * 400  # about the size of a membership event's envelope
    started = time.time()
    for batch in range(0, total, 500):
        pipe = client.pipeline(transaction=False)
        for i in range(batch, min(total, batch + 500)):
            pipe.xadd(f"{prefix}raw:{i % STREAMS}", {"e": payload})
        pipe.execute()
    ends = [done.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(10)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    return total / (max(ends) - started)


# --- Groupwire -----------------------------------------------------------------------------


def open_gw(url: str, prefix: str, **extra: object):  # type: ignore[no-untyped-def]
    from groupwire import Groupwire

    return Groupwire.open(
        url,
        load_entry_points=False,
        bus_url=REDIS,
        bus_prefix=prefix,
        relay_poll_interval=0.05,
        **extra,
    )


def worker_main(url: str, prefix: str, stop_key: str, results: mp.Queue) -> None:
    gw = open_gw(url, prefix, auto_migrate=False)
    client = redis.Redis.from_url(REDIS)
    latencies: list[float] = []
    count = [0]

    def handle(event) -> None:  # type: ignore[no-untyped-def]
        count[0] += 1
        latencies.append(time.time() - event.time.timestamp())
        if count[0] % 500 == 0:
            client.incrby(f"{prefix}handled", 500)

    gw.subscribe("*", handle, name="bench")
    worker = gw.worker(subscribers=["bench"], block_ms=20)
    worker.start()
    while not client.exists(stop_key):
        time.sleep(0.05)
        client.set(f"{prefix}handled:{os.getpid()}", count[0])
    worker.stop()
    results.put((count[0], latencies))
    gw.close()


def handled(client: redis.Redis, prefix: str) -> int:
    return sum(int(client.get(k) or 0) for k in client.scan_iter(match=f"{prefix}handled:*"))


def groupwire_run(workers: int, total: int, paced_rate: float | None) -> tuple[float, list[float]]:
    schema = f"gw_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG}?options=-csearch_path%3D{schema}"
    prefix = f"gw:bench:{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(REDIS)
    try:
        gw = open_gw(url, prefix)
        customers = [gw.customers.create(f"b{i}@example.com").id for i in range(500)]
        groups = [gw.groups.create(f"bench {g}").id for g in range(64)]
        gw.start()
        results: mp.Queue = mp.Queue()
        stop_key = f"{prefix}stop"
        procs = [
            mp.Process(target=worker_main, args=(url, prefix, stop_key, results))
            for _ in range(workers)
        ]
        for p in procs:
            p.start()
        base = gw.events.last_sequence()
        while handled(client, prefix) < base:  # warm up: setup events handled
            time.sleep(0.05)
        size = 25 if paced_rate else 500
        started = time.time()
        committed = 0
        member = {g: False for g in groups}
        i = 0
        while committed < total:
            group = groups[i % len(groups)]
            chunk = customers[(i // len(groups)) % (500 // size) * size :][:size]
            if member[group]:
                gw.groups.remove_customers(group, chunk)
            else:
                gw.groups.add_customers(group, chunk)
            member[group] = not member[group]
            committed += len(chunk)
            i += 1
            if paced_rate:
                ahead = started + committed / paced_rate - time.time()
                if ahead > 0:
                    time.sleep(ahead)
        target = gw.events.last_sequence()
        while handled(client, prefix) < target:
            time.sleep(0.01)
        elapsed = time.time() - started
        client.set(stop_key, 1)
        latencies: list[float] = []
        for _ in procs:
            _count, lat = results.get(timeout=60)
            latencies += lat
        for p in procs:
            p.join(10)
        gw.close()
        n = target - base
        return n / elapsed, sorted(latencies[-n:]) if paced_rate else []
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    rates: dict[int, float] = {}
    for w in counts:
        raw = raw_run(args.events, w)
        rate, _ = groupwire_run(w, args.events, None)
        rates[w] = rate
        print(
            f"workers={w}: raw XADD+XREADGROUP {raw:,.0f} events/s; Groupwire end to end "
            f"{rate:,.0f} events/s = {rate / raw:.2f} x raw",
            flush=True,
        )
    half = rates[counts[0]] / 2
    _, lat = groupwire_run(counts[0], min(args.events, int(half * 8)), half)
    p50 = statistics.quantiles(lat, n=100)[49] * 1000
    p99 = statistics.quantiles(lat, n=100)[98] * 1000
    print(
        f"latency at {half:,.0f} events/s (half the {counts[0]}-worker throughput), "
        f"{len(lat)} events: p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        flush=True,
    )


if __name__ == "__main__":
    main()
