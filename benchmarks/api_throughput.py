"""Admin API throughput (run on demand, not in CI): ``uv run python benchmarks/api_throughput.py``.

Starts ``uvicorn --workers 2`` on a fresh SQLite file, loopback only, and drives it with an
async httpx client (a bounded number of requests, ``--concurrency`` in flight). Measures, in
the same run and against the same server:

0. baseline: a FastAPI route that does nothing (``POST /bench/noop``, outside ``/admin``);
1. single-customer add: ``POST /admin/customer-groups/{id}/customers {"add": [one id]}``;
2. batch add: the same route with 100 ids per request;
3. group list: ``GET /admin/customer-groups`` (50 groups, default page).

Prints requests/s, p50 and p99 latency per scenario and each as a ratio to the baseline.
The load generator shares the machine with the two workers: compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import insert

from groupwire import Groupwire
from groupwire.auth import keys
from groupwire.domain.ids import CUSTOMER, new_id
from groupwire.store import tables


def bench_app() -> FastAPI:
    """The real app from the environment, plus the do-nothing baseline route."""
    from groupwire.api.asgi import create_app_from_env

    app = create_app_from_env()

    @app.post("/bench/noop", include_in_schema=False)
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    return app


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(
    client: httpx.AsyncClient, name: str, requests: list[tuple[str, str, object]], concurrency: int
) -> Result:
    queue = list(reversed(requests))
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            method, url, body = queue.pop()
            started = time.perf_counter()
            response = await client.request(method, url, json=body)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{name}: {response.status_code} {response.text}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(name, len(requests), time.perf_counter() - started, latencies)


def seed_customers(gw: Groupwire, n: int, prefix: str) -> list[str]:
    now = datetime.now(UTC)
    ids = [new_id(CUSTOMER) for _ in range(n)]
    rows = [
        {"id": cid, "email": f"{prefix}{i}@bench.test", "created_at": now, "updated_at": now}
        for i, cid in enumerate(ids)
    ]
    with gw.engine.begin() as conn:
        conn.execute(insert(tables.customer), rows)
    return ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run(url: str, secret: str, plan: dict[str, list[tuple[str, str, object]]], c: int):
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=60
    ) as client:
        await drive(client, "warm-up", [("POST", "/bench/noop", {})] * 200, c)
        await drive(client, "warm-up", [("GET", "/admin/customer-groups", None)] * 100, c)
        return [await drive(client, name, requests, c) for name, requests in plan.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per scenario (batch: /10)")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    n, batch_requests = args.requests, max(1, args.requests // 10)

    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        gw = Groupwire.open(database_url, load_entry_points=False)  # migrates once, up front
        _, secret = keys.create_key(gw.engine, "bench", ["write"])
        single_group = gw.groups.create("single").id
        batch_group = gw.groups.create("batch").id
        for i in range(48):
            gw.groups.create(f"group {i:02d}")
        singles = seed_customers(gw, n, "s")
        batched = seed_customers(gw, batch_requests * 100, "b")
        gw.close()

        port = free_port()
        env = {
            **os.environ,
            "GROUPWIRE_DATABASE_URL": database_url,
            "GROUPWIRE_LOAD_ENTRY_POINTS": "false",
        }
        command = [
            sys.executable, "-m", "uvicorn", "--factory", "api_throughput:bench_app",
            "--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "2", "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        server = subprocess.Popen(command, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.post(f"{url}/bench/noop").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("uvicorn did not start")
                time.sleep(0.2)

            members = f"/admin/customer-groups/{single_group}/customers"
            batch_members = f"/admin/customer-groups/{batch_group}/customers"
            plan = {
                "baseline: no-op route": [("POST", "/bench/noop", {"add": ["x"]})] * n,
                "add 1 customer": [("POST", members, {"add": [cid]}) for cid in singles],
                "add 100 customers": [
                    ("POST", batch_members, {"add": batched[i : i + 100]})
                    for i in range(0, len(batched), 100)
                ],
                "list groups": [("GET", "/admin/customer-groups", None)] * n,
            }
            results = asyncio.run(run(url, secret, plan, args.concurrency))
        finally:
            server.terminate()
            server.wait(30)

    base = results[0]
    print(f"uvicorn --workers 2, SQLite, {args.concurrency} requests in flight, loopback")
    print(
        f"{'scenario':<24}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'rate/base':>11}{'p50/base':>10}{'p99/base':>10}"
    )
    for r in results:
        print(
            f"{r.name:<24}{r.requests:>9}{r.rate:>9.0f}{r.quantile(0.5) * 1e3:>9.1f}"
            f"{r.quantile(0.99) * 1e3:>9.1f}{r.rate / base.rate:>11.3f}"
            f"{r.quantile(0.5) / base.quantile(0.5):>10.1f}"
            f"{r.quantile(0.99) / base.quantile(0.99):>10.1f}"
        )
    batch = results[2]
    print(
        f"batch add: {batch.rate * 100:.0f} memberships/s, "
        f"{batch.rate * 100 / results[1].rate:.1f}x the memberships/s of single adds"
    )
    print("groups listed per request: 50 (default page)")


if __name__ == "__main__":
    main()
