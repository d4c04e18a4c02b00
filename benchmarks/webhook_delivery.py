"""Webhook delivery benchmark (run on demand, not in CI):
``uv run python benchmarks/webhook_delivery.py [--postgres URL]``.

A fast receiver (a bare asyncio HTTP/1.1 server answering 200, keep-alive) runs in its own
process on 127.0.0.1. In the same run and against the same receiver:

0. baselines: raw POSTs of the same bodies with the same concurrency (no database, no
   signing) through ``aiohttp`` (the dispatcher's HTTP client) and through ``httpx``;
1. throughput: N events already in the log are fanned out into messages (``gw.deliver_pending``)
   and then sent by the background dispatcher (signed, logged attempt by attempt) until every
   message has succeeded: deliveries/s, as a ratio to the baseline; and where the dispatcher's
   time goes (signing, sending, recording, claiming);
2. latency: single-event commits at a modest rate with ``gw.start()`` running; commit ->
   receiver p50/p99 (from the event's ``time``, taken when its transaction starts, to the
   arrival at the receiver).

The first deliveries are verified with ``standardwebhooks`` on the receiving side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import socket
import statistics
import tempfile
import threading
import time
import uuid
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import create_engine, text

from groupwire import Context, Groupwire
from groupwire.domain.events import customers_added
from groupwire.store.engine import normalise_url
from groupwire.store.unit_of_work import UnitOfWork
from groupwire.webhooks import webhooks_of

VERIFY_FIRST = 20


# --- the receiver (its own process) ------------------------------------------------------------


def receiver_main(port_out: Connection, control: Connection) -> None:
    arrivals: list[tuple[float, bytes]] = []
    state: dict[str, Any] = {"count": 0, "secret": None, "keep": False, "verified": 0, "bad": 0}

    class Http(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].decode("latin-1")
                length = 0
                headers = {}
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if len(self.buffer) < end + 4 + length:
                    return
                body = self.buffer[end + 4 : end + 4 + length]
                self.buffer = self.buffer[end + 4 + length :]
                state["count"] += 1
                if state["keep"]:
                    arrivals.append((time.time(), body))
                if state["secret"] and state["verified"] + state["bad"] < VERIFY_FIRST:
                    from standardwebhooks import Webhook

                    try:
                        Webhook(state["secret"]).verify(body, headers)
                        state["verified"] += 1
                    except Exception:
                        state["bad"] += 1
                self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    def serve_control() -> None:
        while True:
            command, argument = control.recv()
            if command == "count":
                control.send(state["count"])
            elif command == "secret":
                state["secret"] = argument
                control.send(True)
            elif command == "keep":
                arrivals.clear()
                state["keep"] = argument
                control.send(True)
            elif command == "arrivals":
                control.send([(at, json.loads(body)["time"]) for at, body in arrivals])
            elif command == "verified":
                control.send((state["verified"], state["bad"]))
            elif command == "stop":
                control.send(True)
                return

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Http, "127.0.0.1", 0, backlog=1024)
        port_out.send(server.sockets[0].getsockname()[1])
        done = asyncio.Event()
        thread = threading.Thread(
            target=lambda: (serve_control(), loop.call_soon_threadsafe(done.set)), daemon=True
        )
        thread.start()
        await done.wait()
        server.close()

    asyncio.run(main())


class ReceiverProcess:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        port_in, port_out = ctx.Pipe(duplex=False)
        self.control, remote = ctx.Pipe()
        self.process = ctx.Process(target=receiver_main, args=(port_out, remote), daemon=True)
        self.process.start()
        self.port = int(port_in.recv())
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def ask(self, command: str, argument: Any = None) -> Any:
        self.control.send((command, argument))
        return self.control.recv()

    def stop(self) -> None:
        self.ask("stop")
        self.process.join(5)


# --- scenarios ---------------------------------------------------------------------------------


def write_events(gw: Groupwire, count: int) -> None:
    """``count`` customer_added events in the log, committed in batches of 1,000."""
    group = gw.groups.create(f"bench {uuid.uuid4().hex[:8]}")
    now = datetime.now().astimezone()
    for start in range(0, count, 1000):
        with UnitOfWork(gw.engine, source="bench", context=Context(actor="bench")) as uow:
            ids = [f"cus_bench{n:08d}" for n in range(start, min(count, start + 1000))]
            uow.emit(customers_added(group.id, ids, now))
            uow.commit()


async def baseline_aiohttp(url: str, bodies: list[bytes], concurrency: int) -> float:
    """Raw POSTs/s through aiohttp, the dispatcher's client: same bodies and concurrency, no
    signing, no database."""
    queue = list(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                async with session.post(
                    url, data=body, headers={"content-type": "application/json"}
                ) as response:
                    await response.read()
                    response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(bodies) / (time.perf_counter() - started)


async def baseline_httpx(url: str, bodies: list[bytes], concurrency: int) -> float:
    """The same through httpx."""
    queue = list(bodies)
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=concurrency),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                response = await client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(bodies) / (time.perf_counter() - started)


def throughput(url: str, receiver: ReceiverProcess, events: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        database = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        gw = Groupwire.open(
            database,
            load_entry_points=False,
            webhooks_allow_private=True,
            webhooks_endpoint_concurrency=concurrency,
            webhooks_poll_interval=0.2,
        )
        try:
            webhooks = webhooks_of(gw)
            endpoint = webhooks.create(receiver.url, event_types=["customer_group.customer_added"])
            receiver.ask("secret", endpoint.secret)
            write_events(gw, events)
            sample = [
                json.dumps(e.envelope(), separators=(",", ":")).encode()
                for e in gw.events.list(limit=events, type="customer_group.customer_added")
            ]

            started = time.perf_counter()
            gw.deliver_pending()
            fan_out = time.perf_counter() - started
            queued = webhooks.messages(endpoint.id, limit=1).count
            assert queued == events, (queued, events)

            before = receiver.ask("count")
            started = time.perf_counter()
            webhooks.start()
            # Wait on the receiver's count (a pipe, no database work competing with the
            # dispatcher), then for the last outcomes to be recorded.
            while receiver.ask("count") - before < events:
                time.sleep(0.02)
            while webhooks.messages(endpoint.id, status="succeeded", limit=1).count < events:
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            webhooks.stop()
            stats = webhooks.dispatcher.stats
            delivered = receiver.ask("count") - before

            raw = asyncio.run(baseline_aiohttp(receiver.url, sample, concurrency))
            raw_httpx = asyncio.run(baseline_httpx(receiver.url, sample, concurrency))
            rate = events / elapsed
            verified, bad = receiver.ask("verified")
            busy = stats.signing_seconds + stats.sending_seconds
            print(
                f"  fan-out: {events} events -> messages in {fan_out:.2f} s "
                f"({events / fan_out:,.0f} events/s)"
            )
            print(
                f"  baselines (raw POSTs, no signing, no db): aiohttp {raw:,.0f} requests/s, "
                f"httpx {raw_httpx:,.0f} requests/s"
            )
            print(
                f"  signed webhook deliveries: {rate:,.0f} deliveries/s "
                f"(x{rate / raw:.2f} of raw aiohttp, x{rate / raw_httpx:.2f} of raw httpx); "
                f"{delivered} requests for {events} messages; {stats.failed} failed attempts"
            )
            print(
                f"  signing: {stats.signing_seconds / stats.attempts * 1e6:.1f} us/message, "
                f"{100 * stats.signing_seconds / busy:.2f}% of sign+send time "
                f"(send {stats.sending_seconds / stats.attempts * 1e3:.2f} ms/message "
                f"with {concurrency} in flight)"
            )
            print(
                f"  database: recording {stats.recording_seconds:.2f} s, claiming "
                f"{stats.claiming_seconds:.2f} s of {elapsed:.2f} s wall time"
            )
            print(
                f"  receiver verified {verified} of the first {verified + bad} signatures "
                f"with standardwebhooks"
            )
        finally:
            gw.close()


def latency(url: str, receiver: ReceiverProcess, commits: int, rate: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        database = url or f"sqlite:///{Path(tmp) / 'latency.db'}"
        gw = Groupwire.open(database, load_entry_points=False, webhooks_allow_private=True)
        try:
            endpoint = webhooks_of(gw).create(receiver.url, event_types=["customer_group.*"])
            receiver.ask("keep", True)
            gw.start()
            group = gw.groups.create("latency")
            pause = 1 / rate
            for n in range(commits):
                started = time.perf_counter()
                gw.groups.update(group.id, description=f"commit {n}")
                time.sleep(max(0.0, pause - (time.perf_counter() - started)))
            deadline = time.monotonic() + 60
            while receiver.ask("count") and time.monotonic() < deadline:
                succeeded = webhooks_of(gw).messages(endpoint.id, status="succeeded").count
                if succeeded >= commits + 1:
                    break
                time.sleep(0.05)
            arrivals = receiver.ask("arrivals")
            receiver.ask("keep", False)
        finally:
            gw.close()
    delays = sorted(
        (at - datetime.fromisoformat(sent.replace("Z", "+00:00")).timestamp()) * 1000
        for at, sent in arrivals
    )
    p50 = statistics.median(delays)
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(
        f"  {len(delays)} deliveries at ~{rate:.0f} commits/s: commit -> receiver "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {delays[-1]:.1f} ms"
    )


def postgres_schema(url: str) -> tuple[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", (admin, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", help="also run on this PostgreSQL URL (throw-away schema)")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=10, help="per-endpoint concurrency")
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="commits/s in the latency run")
    args = parser.parse_args()
    receiver = ReceiverProcess()
    try:
        backends = [("sqlite", "")]
        cleanups = []
        if args.postgres:
            pg_url, cleanup = postgres_schema(args.postgres)
            backends.append(("postgresql", pg_url))
            cleanups.append(cleanup)
        for name, url in backends:
            print(f"[{name}] throughput, {args.events} events, one endpoint")
            throughput(url, receiver, args.events, args.concurrency)
            print(f"[{name}] latency, {args.commits} commits")
            latency(url, receiver, args.commits, args.rate)
        for admin, schema in cleanups:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
