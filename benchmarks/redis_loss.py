"""Duplicates after Redis loses its data under load, against the events that could come again.

    uv run python benchmarks/redis_loss.py [--rate 2000] [--before 4] [--after 4] [--workers 2]

A redis-server of the benchmark's own (``--save "" --appendonly no``, a free port), a
PostgreSQL schema of its own. A producer thread commits membership changes (25 per
transaction) at ``--rate`` events/s with the relay running in its process, as an API server
would; W worker processes run one ``from_now`` subscriber that records every delivery (no
dedupe) in PostgreSQL. After ``--before`` seconds Redis is shut down with ``SHUTDOWN NOSAVE``
and started again on the same port while the load goes on for ``--after`` seconds more.

Baseline: the *window*, the events published before the loss above the subscriber's saved
progress on their stream (``bus_progress`` read right after the shutdown; workers save what
they handled as soon as Redis fails them, so it is also printed as read just before). Those
are the only events the subscriber may see twice; the rest must come exactly once. Prints
the window, the duplicates delivered (and their ratio to the window), the duplicates outside
the window (expected 0), and the missing events, which must be 0 (exits 1 otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PG = os.environ.get("GROUPWIRE_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
SUBSCRIBER = "recorder"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server without persistence, to shut down (NOSAVE) and start again."""

    def __init__(self, workdir: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not on PATH")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        for _ in range(200):
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def shutdown_nosave(self) -> None:
        assert self.process is not None
        with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it exits
            redis.Redis(port=self.port, socket_timeout=5).shutdown(nosave=True)
        self.process.wait(10)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def open_gw(url: str, redis_url: str, prefix: str, **extra: Any):  # type: ignore[no-untyped-def]
    from groupwire import Groupwire

    return Groupwire.open(
        url,
        load_entry_points=False,
        bus_url=redis_url,
        bus_prefix=prefix,
        relay_poll_interval=0.05,
        **extra,
    )


def worker_main(url: str, redis_url: str, prefix: str, stop: Any) -> None:
    gw = open_gw(url, redis_url, prefix, auto_migrate=False)

    def record(events: list[Any]) -> None:
        with gw.engine.begin() as conn:
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.execute(
                text("INSERT INTO loss_delivery (sequence) VALUES (:s)"),
                [{"s": e.sequence} for e in events],
            )

    gw.subscribe("*", record, name=SUBSCRIBER, from_now=True, batch=True)
    worker = gw.worker(subscribers=[SUBSCRIBER], block_ms=20).start()
    stop.wait()
    worker.stop()
    gw.close()


def progress(gw: Any, prefix: str) -> dict[int, int]:
    from groupwire.events.bus_tables import bus_progress

    with gw.engine.connect() as conn:
        rows = conn.execute(
            select(bus_progress.c.stream, bus_progress.c.last_sequence).where(
                bus_progress.c.bus == prefix, bus_progress.c.subscriber == SUBSCRIBER
            )
        )
        return {int(stream): int(last) for stream, last in rows}


def cursor(gw: Any, prefix: str) -> int:
    from groupwire.events.bus_tables import bus_cursor

    with gw.engine.connect() as conn:
        value = conn.execute(
            select(bus_cursor.c.last_sequence).where(bus_cursor.c.bus == prefix)
        ).scalar_one_or_none()
        return int(value or 0)


def load(
    gw: Any, customers: list[str], groups: list[str], rate: float, stop: threading.Event
) -> None:
    """Membership changes of 25 customers each, paced at ``rate`` events per second."""
    member = dict.fromkeys(groups, False)
    started, committed, i = time.time(), 0, 0
    while not stop.is_set():
        group = groups[i % len(groups)]
        chunk = customers[(i // len(groups)) % 8 * 25 :][:25]
        if member[group]:
            gw.groups.remove_customers(group, chunk)
        else:
            gw.groups.add_customers(group, chunk)
        member[group] = not member[group]
        committed += len(chunk)
        i += 1
        ahead = started + committed / rate - time.time()
        if ahead > 0:
            time.sleep(ahead)


def wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def run(rate: float, before: float, after: float, workers: int) -> int:
    schema = f"gw_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG}?options=-csearch_path%3D{schema}"
    prefix = f"gw:loss:{uuid.uuid4().hex[:8]}:"
    workdir = tempfile.mkdtemp(prefix="gw-redis-loss-")
    server = RedisServer(workdir)
    server.start()
    ctx = mp.get_context("spawn")
    stop_workers = ctx.Event()
    procs: list[Any] = []
    try:
        gw = open_gw(url, server.url, prefix)
        with gw.engine.begin() as conn:
            conn.execute(text("CREATE TABLE loss_delivery (sequence bigint NOT NULL)"))
        customers = [gw.customers.create(f"l{i}@example.com").id for i in range(200)]
        groups = [gw.groups.create(f"loss {g}").id for g in range(32)]
        gw.start()
        assert gw.drain(60)  # the setup is history to the from_now subscriber
        procs = [
            ctx.Process(target=worker_main, args=(url, server.url, prefix, stop_workers))
            for _ in range(workers)
        ]
        for p in procs:
            p.start()
        partitions = gw.bus_relay.bus.partitions
        wait(lambda: len(progress(gw, prefix)) == partitions, 60, "the subscriber registered")
        registered = min(progress(gw, prefix).values())
        stop_load = threading.Event()
        producer = threading.Thread(target=load, args=(gw, customers, groups, rate, stop_load))
        load_started = time.monotonic()
        producer.start()
        time.sleep(before)

        saved_before = progress(gw, prefix)
        server.shutdown_nosave()
        saved = progress(gw, prefix)
        published = cursor(gw, prefix)
        server.start()
        time.sleep(after)
        stop_load.set()
        producer.join(60)
        achieved = (gw.events.last_sequence() - registered) / (time.monotonic() - load_started)

        last = gw.events.last_sequence()
        expected = set(range(registered + 1, last + 1))
        stream_of = {
            e.sequence: gw.bus_relay.bus.stream_of(e.partition)
            for e in gw.events.list(after=registered, limit=None)
        }
        window = {s for s in expected if s <= published and s > saved[stream_of[s]]}
        window_before = {s for s in expected if s <= published and s > saved_before[stream_of[s]]}

        def delivered() -> list[int]:
            with gw.engine.connect() as conn:
                return [
                    int(s)
                    for s in conn.execute(text("SELECT sequence FROM loss_delivery")).scalars()
                ]

        def seen_all() -> bool:
            return expected <= set(delivered())

        with contextlib.suppress(TimeoutError):  # reported as missing below
            wait(seen_all, 120, "every event delivered")
        stop_workers.set()
        for p in procs:
            p.join(30)
        deliveries = delivered()
        counts: dict[int, int] = {}
        for s in deliveries:
            counts[s] = counts.get(s, 0) + 1
        duplicates = sum(n - 1 for n in counts.values())
        outside = sum(n - 1 for s, n in counts.items() if s not in window)
        missing = len(expected - set(counts))
        resets = gw.bus_relay.resets
        gw.close()
    finally:
        stop_workers.set()
        for p in procs:
            if p.is_alive():
                p.kill()
        server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    ratio = duplicates / len(window) if window else 0.0
    print(
        f"{len(expected)} events at {achieved:,.0f} events/s (asked {rate:,.0f}), {workers} "
        f"worker(s), Redis lost its data "
        f"after {before:g}s (relay republished {resets} time(s)); events published after the "
        f"last saved progress: {len(window_before)} just before the loss, {len(window)} right "
        f"after it (the window); {duplicates} duplicates delivered = {ratio:.2f} x the window, "
        f"{outside} duplicates outside the window, {missing} missing",
        flush=True,
    )
    return 1 if missing else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--before", type=float, default=4.0)
    parser.add_argument("--after", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sys.exit(run(args.rate, args.before, args.after, args.workers))


if __name__ == "__main__":
    main()
