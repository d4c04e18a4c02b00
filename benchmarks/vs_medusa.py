"""Groupwire side by side with a real Medusa 2.21.2: ``uv run python benchmarks/vs_medusa.py``.

On demand only (it installs and starts Medusa through the test harness,
``tests.medusa.harness.running_medusa``, unless ``--base-url``, ``--jwt`` and ``--medusa-db``
name a running one). Both run on the local PostgreSQL; Groupwire is a uvicorn server process
of ``groupwire.api.asgi:create_app_from_env`` with its events and hooks as usual (the outbox,
the in-process relay and the built-in subscribers). One keep-alive client per server, in the
same run, the same requests to each:

- create a customer, one at a time (``POST /admin/customers``): requests/s and p50;
- add 10,000 customers to a group in one call (``POST /admin/customer-groups/{id}/customers``);
- list 100 groups (``GET /admin/customer-groups?limit=100``): p50;
- a group with 1,000 members (``GET /admin/customer-groups/{id}?fields=*customers``): p50.

The customers the scenarios add to groups are written into each database directly (the same
count; Medusa's own ``customer`` table), groups and memberships through each API. Every
database is then analysed (``ANALYZE``) before it is measured, as a live store's would be
(autovacuum keeps its planner statistics): after each seeding and before each read scenario,
so the figures compare the stacks, not a plan made without statistics (a group of 1,000
members read with ``fields=*customers``: 50.3 ms on this benchmark's floor unanalysed, against
11.4 ms in ``api_floor.py``, which analyses). Medusa is
called with its admin user's JWT, its cheapest authentication (a secret key costs it an scrypt
per request); Groupwire with an API key.

A third server answers the same requests in the same run: the **floor** of ``api_floor.py``
(``api_floor:floor_app``: a bare FastAPI route per path under the same uvicorn, running the
SQL of the change or read with psycopg, its events' rows included, answering the same bytes
encoded with orjson, no authentication, validation or hooks), on a database of its own with
Groupwire's schema, seeded the same way. Medusa/floor is the most any server built on this
stack could be ahead of Medusa on that row, on this machine, in this run.

Prints the three figures and two ratios per row: Medusa/Groupwire (how many times faster
Groupwire is; target 10x on every row) and Medusa/floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_floor import server

TARGET = 10.0


@dataclass
class Timed:
    latencies: list[float]
    seconds: float

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


def timed(client: httpx.Client, requests: list[tuple[str, str, Any]]) -> Timed:
    """Send ``requests`` one after the other on one keep-alive connection."""
    latencies = []
    started = time.perf_counter()
    for method, url, body in requests:
        begun = time.perf_counter()
        response = client.request(method, url, json=body)
        latencies.append(time.perf_counter() - begun)
        if response.status_code != 200:
            answer = f"{response.status_code} {response.text[:500]}"
            raise SystemExit(f"{client.base_url}{url}: {answer}")
    return Timed(latencies, time.perf_counter() - started)


class Target:
    """One server under test: its client and how to seed customers into its database."""

    def __init__(
        self,
        name: str,
        client: httpx.Client,
        seed: Callable[[list[str]], None],
        prefix: str,
        database_url: str,
    ) -> None:
        self.name = name
        self.client = client
        self.seed = seed
        self.prefix = prefix
        self.database_url = database_url

    def customers(self, count: int) -> list[str]:
        """``count`` new customers written into the database directly, then analysed."""
        ids = [f"{self.prefix}{uuid.uuid4().hex[:24].upper()}" for _ in range(count)]
        self.seed(ids)
        self.analyze()
        return ids

    def analyze(self) -> None:
        """Fresh planner statistics for the whole database (what autovacuum gives a live
        store), after the rows a scenario wrote and before it is measured."""
        analyze(self.database_url)

    def group(self, name: str) -> str:
        response = self.client.post("/admin/customer-groups", json={"name": name})
        response.raise_for_status()
        return str(response.json()["customer_group"]["id"])

    def add(self, group_id: str, ids: list[str]) -> None:
        path = f"/admin/customer-groups/{group_id}/customers"
        self.client.post(path, json={"add": ids}).raise_for_status()


def analyze(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def seed_medusa(database_url: str) -> Callable[[list[str]], None]:
    def seed(ids: list[str]) -> None:
        with (
            psycopg.connect(database_url) as conn,
            conn.cursor() as cursor,
            cursor.copy("COPY customer (id, email) FROM STDIN") as copy,
        ):
            for cid in ids:
                copy.write_row((cid, f"{cid.lower()}@bench.example"))

    return seed


def seed_groupwire(database_url: str) -> Callable[[list[str]], None]:
    from groupwire.store import bulk, tables
    from groupwire.store.engine import create_store_engine

    def seed(ids: list[str]) -> None:
        engine = create_store_engine(database_url)
        try:
            with engine.connect().execution_options(groupwire_write=True) as conn, conn.begin():
                now = bulk.timestamp(conn, datetime.now(UTC))
                bulk.insert_rows(
                    conn,
                    tables.customer,
                    ("id", "email", "has_account", "created_at", "updated_at"),
                    [(cid, f"{cid.lower()}@bench.example", False, now, now) for cid in ids],
                )
        finally:
            engine.dispose()

    return seed


@contextmanager
def groupwire_database(postgres: str, label: str) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database with Groupwire's schema: (database URL, API key)."""
    from groupwire import Groupwire
    from groupwire.auth import keys

    name = f"gw_vs_medusa_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin_url = postgres.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        gw = Groupwire.open(database_url, load_entry_points=False)  # migrates
        _, secret = keys.create_key(gw.engine, "vs medusa", ["write"])
        gw.close()
        yield database_url, secret
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def groupwire_server(postgres: str) -> Iterator[tuple[str, str, str]]:
    """A fresh database and a Groupwire server on it: (url, API key, database)."""
    app = "groupwire.api.asgi:create_app_from_env"
    with groupwire_database(postgres, "gw") as (database_url, secret):
        env = {"GROUPWIRE_DATABASE_URL": database_url, "GROUPWIRE_LOAD_ENTRY_POINTS": "false"}
        with server(app, env, 1) as (url, _pid):
            yield url, secret, database_url


@contextmanager
def floor_server(postgres: str) -> Iterator[tuple[str, str]]:
    """A fresh database with Groupwire's schema and the floor server on it: (url, database)."""
    with (
        groupwire_database(postgres, "floor") as (database_url, _),
        server("api_floor:floor_app", {"FLOOR_DATABASE_URL": database_url}, 1) as (url, _pid),
    ):
        yield url, database_url


@dataclass
class Line:
    label: str
    medusa: str
    groupwire: str
    floor: str
    ratio: float
    """Medusa/Groupwire"""
    ceiling: float
    """Medusa/floor"""


def compare(targets: list[Target], args: argparse.Namespace) -> list[Line]:
    lines: list[Line] = []
    run = uuid.uuid4().hex[:6]

    def both(make: Callable[[Target], list[tuple[str, str, Any]]], warm: int) -> list[Timed]:
        out = []
        for target in targets:
            requests = make(target)
            timed(target.client, requests[:warm])
            out.append(timed(target.client, requests[warm:]))
        return out

    def ms(value: float) -> str:
        return f"{value * 1000:.1f} ms"

    # 1. create a customer, one at a time
    warm = 5
    m, g, f = both(
        lambda t: [
            ("POST", "/admin/customers", {"email": f"new-{run}-{t.name}-{i}@bench.example"})
            for i in range(args.creates + warm)
        ],
        warm,
    )
    lines.append(
        Line(
            "create a customer, one at a time",
            f"{m.rate:.0f} req/s, p50 {ms(m.p50)}",
            f"{g.rate:.0f} req/s, p50 {ms(g.p50)}",
            f"{f.rate:.0f} req/s, p50 {ms(f.p50)}",
            m.p50 / g.p50,
            m.p50 / f.p50,
        )
    )
    print_line(lines[-1])

    # 2. add 10,000 customers in one call (median of --bulk-repeats calls, each a new group)
    times: dict[str, list[float]] = {}
    for target in targets:
        ids = target.customers(args.bulk)
        times[target.name] = []
        for repeat in range(args.bulk_repeats):
            gid = target.group(f"bulk {run} {repeat}")
            path = f"/admin/customer-groups/{gid}/customers"
            times[target.name] += timed(target.client, [("POST", path, {"add": ids})]).latencies
    m_bulk, g_bulk, f_bulk = (statistics.median(times[t.name]) for t in targets)
    lines.append(
        Line(
            f"add {args.bulk:,} customers in one call",
            f"{m_bulk:.2f} s",
            f"{g_bulk:.3f} s",
            f"{f_bulk:.3f} s",
            m_bulk / g_bulk,
            m_bulk / f_bulk,
        )
    )
    print_line(lines[-1])

    # 3. list 100 groups (at least 100 exist: the bulk groups and more)
    for target in targets:
        for i in range(100):
            target.group(f"list {run} {i:03d}")
        target.analyze()
    warm = 5
    m, g, f = both(
        lambda t: [("GET", "/admin/customer-groups?limit=100", None)] * (args.reads + warm), warm
    )
    lines.append(
        Line("list 100 groups, p50", ms(m.p50), ms(g.p50), ms(f.p50), m.p50 / g.p50, m.p50 / f.p50)
    )
    print_line(lines[-1])

    # 4. a group with 1,000 members, fields=*customers
    big = {}
    for target in targets:
        gid = target.group(f"big {run}")
        target.add(gid, target.customers(args.members))
        target.analyze()
        big[target.name] = gid
    sizes = {}

    def expanded(target: Target) -> list[tuple[str, str, Any]]:
        url = f"/admin/customer-groups/{big[target.name]}?fields=*customers"
        sizes[target.name] = len(target.client.get(url).content)
        return [("GET", url, None)] * (args.reads + warm)

    m, g, f = both(expanded, warm)
    lines.append(
        Line(
            f"a group with {args.members:,} members, `fields=*customers`, p50",
            f"{ms(m.p50)} ({sizes['medusa'] / 1000:.0f} KB)",
            f"{ms(g.p50)} ({sizes['groupwire'] / 1000:.0f} KB)",
            f"{ms(f.p50)} ({sizes['floor'] / 1000:.0f} KB)",
            m.p50 / g.p50,
            m.p50 / f.p50,
        )
    )
    print_line(lines[-1])
    return lines


def print_line(line: Line) -> None:
    verdict = "ok" if line.ratio >= TARGET else "UNDER"
    print(
        f"| {line.label} | {line.medusa} | {line.groupwire} | {line.floor}"
        f" | {line.ratio:.1f}x {verdict} | {line.ceiling:.1f}x |",
        flush=True,
    )


class BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--creates", type=int, default=200, help="customers created one by one")
    parser.add_argument("--reads", type=int, default=100, help="requests per read scenario")
    parser.add_argument("--bulk", type=int, default=10_000, help="customers added in one call")
    parser.add_argument("--bulk-repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=1000, help="members of the read group")
    parser.add_argument("--postgres", default="postgresql://127.0.0.1:5432/test", help="admin URL")
    parser.add_argument("--base-url", help="a running Medusa's URL (else the harness starts one)")
    parser.add_argument("--jwt", help="its admin user's token")
    parser.add_argument("--medusa-db", help="its PostgreSQL URL")
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.base_url:
            base_url, jwt, medusa_db = args.base_url, args.jwt, args.medusa_db
        else:
            from tests.medusa.harness import running_medusa

            print("starting Medusa 2.21.2 (the test harness)...", flush=True)
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            medusa = stack.enter_context(running_medusa(tmp / "medusa"))
            base_url, jwt, medusa_db = medusa.base_url, medusa.jwt, medusa.database_url
        gw_url, secret, gw_db = stack.enter_context(groupwire_server(args.postgres))
        floor_url, floor_db = stack.enter_context(floor_server(args.postgres))
        timeout = httpx.Timeout(600)
        medusa_client = stack.enter_context(
            httpx.Client(base_url=base_url, auth=BearerAuth(jwt), timeout=timeout)
        )
        gw_client = stack.enter_context(
            httpx.Client(base_url=gw_url, auth=BearerAuth(secret), timeout=timeout)
        )
        floor_client = stack.enter_context(httpx.Client(base_url=floor_url, timeout=timeout))
        targets = [
            Target("medusa", medusa_client, seed_medusa(medusa_db), "cus_bench", medusa_db),
            Target("groupwire", gw_client, seed_groupwire(gw_db), "cus_bench", gw_db),
            Target("floor", floor_client, seed_groupwire(floor_db), "cus_bench", floor_db),
        ]
        print(
            "| request | Medusa | Groupwire | floor | Medusa/Groupwire | Medusa/floor |",
            flush=True,
        )
        print("|---|---|---|---|---|---|", flush=True)
        lines = compare(targets, args)
        short = [line.label for line in lines if line.ratio < TARGET]
        print(
            f"{len(lines) - len(short)} of {len(lines)} rows at least {TARGET:.0f}x Medusa"
            + (f"; under: {', '.join(short)}" if short else "")
        )
        beyond = [line.label for line in lines if line.ceiling < TARGET]
        if beyond:
            print(
                f"the floor itself is under {TARGET:.0f}x Medusa on {len(beyond)} of"
                f" {len(lines)} rows: {', '.join(beyond)}"
            )


if __name__ == "__main__":
    main()
