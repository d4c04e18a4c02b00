"""Every Admin API route against its floor: ``uv run python benchmarks/api_floor.py`` (on demand).

For each route, two real uvicorn servers on loopback with the same settings (workers, loop,
http implementation) answer the same requests:

- **Groupwire**: the real app (``groupwire.api.asgi:create_app_from_env``): authentication,
  validation, the service layer with its hooks, events in the outbox, the in-process relay
  delivering them to the built-in subscribers;
- **floor**: a bare FastAPI route per path (:func:`floor_app`) that runs the SQL the change or
  read needs (the rows and, for a change, the outbox counter and the event row) with the same
  driver (``sqlite3``/``psycopg``) and answers the same bytes, encoded with orjson.

Each server has its own database, seeded with the same rows (same ids, same timestamps), so
the reads of both servers must answer byte for byte the same body: the benchmark checks it.
Scenarios (one keep-alive httpx client, then ``--clients`` concurrent ones):

- writes: create a customer; add one member to a group; update a group's description;
- reads: list 100 groups; one group with 1,000 members (``fields=*customers``); a customer
  with its groups (``fields=*groups``);
- bulk: add 10,000 and 100,000 ids to a group in one call (one client; floor: the same
  membership rows and event row written with ``COPY`` or ``executemany``).

Prints p50/p99 and requests/s per scenario, the ratio Groupwire/floor of the p50 with its
target (writes 3x, reads 2x, bulk 2x), and the largest RSS of a Groupwire server process
under the concurrent load (target 150 MB). The load generator shares the machine with the
servers: compare the ratios, which are measured in the same run, not the absolute figures.
``--quick`` runs tiny sizes in seconds (the smoke test in ``tests/benchmarks``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

GROUP_FIELDS = (
    "id",
    "name",
    "description",
    "metadata",
    "created_by",
    "created_at",
    "updated_at",
    "deleted_at",
)
CUSTOMER_FIELDS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "company_name",
    "phone",
    "has_account",
    "metadata",
    "created_by",
    "created_at",
    "updated_at",
    "deleted_at",
)
GROUP_COLUMNS = (*GROUP_FIELDS, "version")
CUSTOMER_COLUMNS = (*CUSTOMER_FIELDS, "version")
EVENT_COLUMNS = (
    "sequence",
    "id",
    "type",
    "source",
    "subject",
    "partition",
    "time",
    "data",
    "actor",
    "correlation_id",
    "span",
    "spread",
)
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
TARGETS = {"write": 3.0, "read": 2.0, "bulk": 2.0}
RSS_TARGET_MB = 150


# --- the floor: bare routes, the same SQL through the driver itself ---------------------------


class Floor:
    """The floor's database access: a pool of driver connections and the SQL of each route."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith("postgresql")
        self.url = url
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        mark = "%s" if self.postgres else "?"
        self.mark = mark
        g = ", ".join(GROUP_COLUMNS)
        c = ", ".join(CUSTOMER_COLUMNS)
        lock = " FOR UPDATE" if self.postgres else ""
        jsonb = f"CAST({mark} AS JSONB)" if self.postgres else mark
        self.sql = {
            "group": f"SELECT {g} FROM customer_group WHERE id = {mark} AND deleted_at IS NULL",
            "group_locked": f"SELECT {g} FROM customer_group WHERE id = {mark}"
            f" AND deleted_at IS NULL{lock}",
            # Groupwire's add of a few members on PostgreSQL: the group key-share-locked,
            # the insert skipping present members
            "group_key_shared": f"SELECT {g} FROM customer_group WHERE id = {mark}"
            " AND deleted_at IS NULL FOR KEY SHARE",
            "insert_new_members": "INSERT INTO customer_group_customer (customer_group_id,"
            " customer_id, created_at, created_by) SELECT %s, value, %s, %s"
            " FROM unnest(CAST(%s AS VARCHAR[])) AS given(value)"
            " ON CONFLICT (customer_group_id, customer_id) DO NOTHING RETURNING customer_id",
            "customer": f"SELECT {c} FROM customer WHERE id = {mark} AND deleted_at IS NULL",
            "count_groups": "SELECT count(*) FROM customer_group WHERE deleted_at IS NULL",
            "list_groups": f"SELECT {g} FROM customer_group WHERE deleted_at IS NULL"
            f" ORDER BY created_at, id LIMIT {mark} OFFSET {mark}",
            "members": f"SELECT {', '.join('c.' + n for n in CUSTOMER_COLUMNS)}"
            " FROM customer_group_customer m JOIN customer c ON c.id = m.customer_id"
            f" WHERE m.customer_group_id = {mark} AND c.deleted_at IS NULL"
            " ORDER BY m.created_at, c.id",
            "groups_of": f"SELECT {', '.join('g.' + n for n in GROUP_COLUMNS)}"
            " FROM customer_group_customer m JOIN customer_group g"
            " ON g.id = m.customer_group_id"
            f" WHERE m.customer_id = {mark} AND g.deleted_at IS NULL ORDER BY g.name, g.id",
            "insert_group": "INSERT INTO customer_group (id, name, created_by, created_at,"
            f" updated_at, version) VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, 1)",
            "insert_customer": "INSERT INTO customer (id, email, has_account, metadata,"
            " created_by, created_at, updated_at, version)"
            f" VALUES ({mark}, {mark}, {mark}, {jsonb}, {mark}, {mark}, {mark}, 1)",
            "insert_member": "INSERT INTO customer_group_customer (customer_group_id,"
            f" customer_id, created_at, created_by) VALUES ({mark}, {mark}, {mark}, {mark})",
            "update_group": f"UPDATE customer_group SET description = {mark},"
            f" updated_at = {mark}, version = version + 1 WHERE id = {mark}",
            "take_sequences": "UPDATE outbox_counter SET last_sequence = last_sequence"
            f" + {mark} WHERE id = 1 RETURNING last_sequence",
            # Groupwire on PostgreSQL: the sequences taken and the event row in one statement
            "take_and_record": "WITH taken AS (UPDATE outbox_counter SET last_sequence ="
            " last_sequence + %s WHERE id = 1 RETURNING last_sequence)"
            f" INSERT INTO event ({', '.join(EVENT_COLUMNS)}) SELECT last_sequence, %s, %s, %s,"
            " %s, %s, %s, CAST(%s AS JSONB), %s, %s, %s, %s FROM taken RETURNING sequence",
            "insert_event": f"INSERT INTO event ({', '.join(EVENT_COLUMNS)}) VALUES"
            f" ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {jsonb},"
            f" {mark}, {mark}, {mark}, {mark})",
        }

    def _connect(self) -> Any:
        if self.postgres:
            return psycopg.connect(self.url)
        conn = sqlite3.connect(
            self.url.removeprefix("sqlite:///"),
            check_same_thread=False,
            timeout=30,
            isolation_level=None,
        )
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "cache_size=-65536",
            "foreign_keys=ON",
            "busy_timeout=30000",
        ):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    @contextmanager
    def connection(self) -> Iterator[Any]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            self._idle.put(conn)

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self.connection() as conn:
            if self.postgres:
                conn.autocommit = True
            yield conn.cursor()

    @contextmanager
    def write(self) -> Iterator[Any]:
        with self.connection() as conn:
            if self.postgres:
                conn.autocommit = False
            else:
                conn.execute("BEGIN IMMEDIATE")
            cursor = conn.cursor()
            try:
                yield cursor
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    # values as Groupwire's column types convert them

    def stamp(self, moment: datetime) -> Any:
        return moment if self.postgres else moment.replace(tzinfo=None).strftime(SQLITE_TIME)

    def json_value(self, value: Any) -> Any:
        if value is None or self.postgres:
            return value
        return json.loads(value)

    def moment(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")

    def group(self, row: Any) -> dict[str, Any]:
        i, name, description, metadata, created_by, created, updated, deleted = row[:8]
        return {
            "id": i,
            "name": name,
            "description": description,
            "metadata": self.json_value(metadata),
            "created_by": created_by,
            "created_at": self.moment(created),
            "updated_at": self.moment(updated),
            "deleted_at": self.moment(deleted),
        }

    def customer(self, row: Any) -> dict[str, Any]:
        return {
            "id": row[0],
            "email": row[1],
            "first_name": row[2],
            "last_name": row[3],
            "company_name": row[4],
            "phone": row[5],
            "has_account": bool(row[6]),
            "metadata": self.json_value(row[7]),
            "created_by": row[8],
            "created_at": self.moment(row[9]),
            "updated_at": self.moment(row[10]),
            "deleted_at": self.moment(row[11]),
        }

    def event(
        self, cursor: Any, kind: str, subject: str, data: dict[str, Any], at: datetime, **run: Any
    ) -> None:
        span = run.get("span", 1)
        spread = run.get("spread")
        if self.postgres:
            values = (f"evt_{uuid.uuid4().hex}", kind, "groupwire", subject, subject, at)
            data_text = orjson.dumps(data).decode()
            params = (span, *values, data_text, "floor", None, span, spread)
            cursor.execute(self.sql["take_and_record"], params)
            cursor.fetchone()
            return
        cursor.execute(self.sql["take_sequences"], (span,))
        last = cursor.fetchone()[0]
        cursor.execute(
            self.sql["insert_event"],
            (
                last,
                f"evt_{uuid.uuid4().hex}",
                kind,
                "groupwire",
                subject,
                subject,
                self.stamp(at),
                orjson.dumps(data).decode(),
                "floor",
                None,
                span,
                spread,
            ),
        )

    def few(self, ids: list[str]) -> bool:
        """Whether Groupwire adds ``ids`` with one INSERT ... ON CONFLICT (PostgreSQL, fewer
        than its COPY threshold) under a key-share lock of the group."""
        return self.postgres and len(ids) < 200

    def insert_members(self, cursor: Any, group_id: str, ids: list[str], at: Any) -> None:
        if self.few(ids):
            cursor.execute(self.sql["insert_new_members"], (group_id, at, "floor", ids))
            cursor.fetchall()
            return
        if self.postgres and len(ids) >= 200:
            copy_sql = (
                "COPY customer_group_customer (customer_group_id, customer_id,"
                " created_at, created_by) FROM STDIN"
            )
            with cursor.copy(copy_sql) as copy:
                for cid in ids:
                    copy.write_row((group_id, cid, at, "floor"))
            return
        cursor.executemany(self.sql["insert_member"], [(group_id, c, at, "floor") for c in ids])


def answer(content: Any, version: int | None = None) -> Response:
    headers = {"ETag": f'"{version}"'} if version is not None else None
    return Response(orjson.dumps(content), media_type="application/json", headers=headers)


def floor_app() -> FastAPI:
    """The floor server (``uvicorn --factory api_floor:floor_app``), on ``FLOOR_DATABASE_URL``."""
    db = Floor(os.environ["FLOOR_DATABASE_URL"])
    sql = db.sql
    app = FastAPI()

    @app.post("/admin/customer-groups")
    async def create_group(request: Request) -> Response:
        name = orjson.loads(await request.body())["name"]

        def work() -> dict[str, Any]:
            now = datetime.now(UTC)
            gid = f"cusgroup_{uuid.uuid4().hex[:26].upper()}"
            with db.write() as cursor:
                stamp = db.stamp(now)
                cursor.execute(sql["insert_group"], (gid, name, "floor", stamp, stamp))
                data = {"id": gid, "name": name, "description": None, "metadata": None}
                db.event(cursor, "customer_group.created", gid, data, now)
            iso = db.moment(now)
            row = dict.fromkeys(GROUP_FIELDS)
            row.update(id=gid, name=name, created_by="floor", created_at=iso, updated_at=iso)
            return row

        return answer({"customer_group": await run_in_threadpool(work)}, 1)

    @app.post("/admin/customers")
    async def create_customer(request: Request) -> Response:
        body = orjson.loads(await request.body())

        def work() -> tuple[dict[str, Any], int]:
            now = datetime.now(UTC)
            cid = f"cus_{uuid.uuid4().hex[:26].upper()}"
            with db.write() as cursor:
                stamp = db.stamp(now)
                values = (cid, body["email"], False, None, "floor", stamp, stamp)
                cursor.execute(sql["insert_customer"], values)
                data = {"id": cid, "email": body["email"], "metadata": None}
                db.event(cursor, "customer.created", cid, data, now)
            iso = db.moment(now)
            row = dict.fromkeys(CUSTOMER_FIELDS)
            row.update(id=cid, email=body["email"], has_account=False, created_by="floor")
            row.update(created_at=iso, updated_at=iso)
            return row, 1

        row, version = await run_in_threadpool(work)
        return answer({"customer": row}, version)

    @app.post("/admin/customer-groups/{group_id}/customers")
    async def add_members(group_id: str, request: Request) -> Response:
        ids = orjson.loads(await request.body())["add"]

        def work() -> tuple[dict[str, Any], int]:
            now = datetime.now(UTC)
            with db.write() as cursor:
                cursor.execute(
                    sql["group_key_shared" if db.few(ids) else "group_locked"], (group_id,)
                )
                row = cursor.fetchone()
                db.insert_members(cursor, group_id, ids, db.stamp(now))
                data = {"group_id": group_id, "customer_id": None, "timestamp": db.moment(now)}
                if len(ids) == 1:
                    db.event(cursor, "customer_group.customer_added", group_id, data, now)
                else:
                    spread = orjson.dumps({"customer_id": ids}).decode()
                    db.event(
                        cursor,
                        "customer_group.customer_added",
                        group_id,
                        data,
                        now,
                        span=len(ids),
                        spread=spread,
                    )
            return db.group(row), row[8]

        group, version = await run_in_threadpool(work)
        return answer({"customer_group": group}, version)

    @app.post("/admin/customer-groups/{group_id}")
    async def update_group(group_id: str, request: Request) -> Response:
        description = orjson.loads(await request.body())["description"]

        def work() -> tuple[dict[str, Any], int]:
            now = datetime.now(UTC)
            with db.write() as cursor:
                cursor.execute(sql["group_locked"], (group_id,))
                row = cursor.fetchone()
                cursor.execute(sql["update_group"], (description, db.stamp(now), group_id))
                changes = {"description": {"old": row[2], "new": description}}
                db.event(
                    cursor,
                    "customer_group.updated",
                    group_id,
                    {"id": group_id, "changes": changes},
                    now,
                )
            group = db.group(row)
            group.update(description=description, updated_at=db.moment(now))
            return group, row[8] + 1

        group, version = await run_in_threadpool(work)
        return answer({"customer_group": group}, version)

    @app.get("/admin/customer-groups")
    def list_groups(limit: int = 50, offset: int = 0) -> Response:
        with db.read() as cursor:
            count = cursor.execute(sql["count_groups"]).fetchone()[0]
            rows = cursor.execute(sql["list_groups"], (limit, offset)).fetchall()
        groups = [db.group(row) for row in rows]
        return answer({"customer_groups": groups, "count": count, "offset": offset, "limit": limit})

    @app.get("/admin/customer-groups/{group_id}")
    def get_group(group_id: str) -> Response:
        with db.read() as cursor:
            row = cursor.execute(sql["group"], (group_id,)).fetchone()
            members = cursor.execute(sql["members"], (group_id,)).fetchall()
        group = db.group(row)
        group["customers"] = [db.customer(member) for member in members]
        return answer({"customer_group": group}, row[8])

    @app.get("/admin/customers/{customer_id}")
    def get_customer(customer_id: str) -> Response:
        with db.read() as cursor:
            row = cursor.execute(sql["customer"], (customer_id,)).fetchone()
            groups = cursor.execute(sql["groups_of"], (customer_id,)).fetchall()
        customer = db.customer(row)
        customer["groups"] = [db.group(group) for group in groups]
        return answer({"customer": customer}, row[12])

    return app


# --- seeding two databases with the same rows ---------------------------------------------------


@dataclass
class Seed:
    """Ids of the seeded rows both servers share."""

    customers: list[str]
    list_groups: list[str]
    big_group: str
    member_of: str  # a customer in several groups
    single_groups: dict[str, str] = field(default_factory=dict)  # server -> group for one adds
    update_groups: dict[str, list[str]] = field(default_factory=dict)
    bulk_groups: dict[str, list[str]] = field(default_factory=dict)


def seed_rows(customers: int, members: int, bulk_groups: int, clients: int) -> tuple[Seed, dict]:
    """Rows for both databases: ``{table: (columns, rows)}`` plus the ids of the scenarios."""
    from groupwire.domain.ids import CUSTOMER, CUSTOMER_GROUP, new_id

    base = datetime(2026, 1, 1, tzinfo=UTC)
    customer_ids = [new_id(CUSTOMER) for _ in range(customers)]
    customer_rows = [
        (cid, f"c{i}@bench.test", False, base + timedelta(microseconds=i))
        for i, cid in enumerate(customer_ids)
    ]
    groups: list[tuple[str, str, datetime]] = []

    def group(name: str) -> str:
        gid = new_id(CUSTOMER_GROUP)
        groups.append((gid, name, base + timedelta(seconds=len(groups))))
        return gid

    list_groups = [group(f"group {i:03d}") for i in range(100)]
    big = group("big")
    seed = Seed(customer_ids, list_groups, big, customer_ids[0])
    for server in ("groupwire", "floor"):
        seed.single_groups[server] = group(f"single {server}")
        seed.update_groups[server] = [group(f"update {server} {i}") for i in range(clients)]
        seed.bulk_groups[server] = [group(f"bulk {server} {i}") for i in range(bulk_groups)]
    memberships = [(big, cid, base + timedelta(microseconds=i)) for i, cid in enumerate(
        customer_ids[:members]
    )]  # fmt: skip
    memberships += [(gid, seed.member_of, base) for gid in list_groups[:10]]
    return seed, {"customers": customer_rows, "groups": groups, "memberships": memberships}


def load_rows(database_url: str, rows: dict[str, list[tuple]]) -> None:
    from groupwire.store import bulk, tables
    from groupwire.store.engine import create_store_engine

    engine = create_store_engine(database_url)
    try:
        with engine.connect().execution_options(groupwire_write=True) as conn, conn.begin():
            ts = lambda moment: bulk.timestamp(conn, moment)  # noqa: E731
            bulk.insert_rows(
                conn,
                tables.customer,
                ("id", "email", "has_account", "created_at", "updated_at"),
                [(i, e, a, ts(t), ts(t)) for i, e, a, t in rows["customers"]],
            )
            bulk.insert_rows(
                conn,
                tables.customer_group,
                ("id", "name", "created_at", "updated_at"),
                [(i, n, ts(t), ts(t)) for i, n, t in rows["groups"]],
            )
            bulk.insert_rows(
                conn,
                tables.membership,
                ("customer_group_id", "customer_id", "created_at"),
                [(g, c, ts(t)) for g, c, t in rows["memberships"]],
            )
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


@contextmanager
def databases(backend: str, postgres: str, tmp: Path) -> Iterator[dict[str, str]]:
    """Two empty databases, ``groupwire`` and ``floor``, migrated; dropped afterwards."""
    from groupwire import Groupwire

    if backend == "sqlite":
        urls = {name: f"sqlite:///{tmp / f'{name}.db'}" for name in ("groupwire", "floor")}
    else:
        suffix = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        names = {name: f"gw_floor_{name}_{suffix}" for name in ("groupwire", "floor")}
        base = postgres.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(base, autocommit=True) as admin:
            for db in names.values():
                admin.execute(f'CREATE DATABASE "{db}"')
        root = base.rsplit("/", 1)[0]
        urls = {name: f"{root}/{db}" for name, db in names.items()}
    for url in urls.values():
        Groupwire.open(url, load_entry_points=False).close()  # migrates
    try:
        yield urls
    finally:
        if backend == "postgresql":
            with psycopg.connect(base, autocommit=True) as admin:
                for db in names.values():
                    admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


# --- servers and load -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(app: str, env: dict[str, str], workers: int) -> Iterator[tuple[str, int]]:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", app,
        "--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{app} exited with {process.returncode}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{app} did not start")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_mb(pid: int) -> float:
    """The largest resident set among ``pid`` and its children, in MB."""
    pids = [pid]
    with suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    largest = 0
    for one in pids:
        with suppress(OSError):
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    largest = max(largest, int(line.split()[1]))
    return largest / 1024


class RssWatch:
    """Samples a server's RSS in a thread while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> RssWatch:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(0.1)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))


Request_ = tuple[str, str, bytes | None]


@dataclass
class Result:
    latencies: list[float]
    seconds: float
    body: bytes = b""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(client: httpx.AsyncClient, requests: list[Request_], clients: int) -> Result:
    pending = list(reversed(requests))
    latencies: list[float] = []
    last = b""

    async def one_client() -> None:
        nonlocal last
        while pending:
            method, url, body = pending.pop()
            headers = {"content-type": "application/json"} if body is not None else None
            started = time.perf_counter()
            response = await client.request(method, url, content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{method} {url}: {response.status_code} {response.text[:500]}")
            last = response.content

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return Result(latencies, time.perf_counter() - started, last)


@dataclass
class Scenario:
    name: str
    kind: str  # write, read or bulk
    requests: Callable[[str, int, int], list[Request_]]  # (server, clients, count) -> requests
    count: int
    same_bytes: bool = False


def scenarios(seed: Seed, sizes: dict[str, Any]) -> list[Scenario]:
    n = sizes["requests"]
    members = sizes["members"]
    customers = seed.customers
    counter = {"groupwire": 0, "floor": 0}

    def dump(value: Any) -> bytes:
        return orjson.dumps(value)

    def create(server: str, clients: int, count: int) -> list[Request_]:
        start = counter[server]
        counter[server] += count
        return [
            ("POST", "/admin/customers", dump({"email": f"new{server}{start + i}@bench.test"}))
            for i in range(count)
        ]

    adds = {"groupwire": 0, "floor": 0}

    def add_one(server: str, clients: int, count: int) -> list[Request_]:
        start = adds[server]
        adds[server] += count
        gid = seed.single_groups[server]
        return [
            ("POST", f"/admin/customer-groups/{gid}/customers", dump({"add": [customers[i]]}))
            for i in range(start, start + count)
        ]

    updates = {"groupwire": 0, "floor": 0}

    def update(server: str, clients: int, count: int) -> list[Request_]:
        start = updates[server]
        updates[server] += count
        groups = seed.update_groups[server]
        return [
            (
                "POST",
                f"/admin/customer-groups/{groups[i % len(groups)]}",
                dump({"description": f"description {i}"}),
            )
            for i in range(start, start + count)
        ]

    def reads(url: str) -> Callable[[str, int, int], list[Request_]]:
        return lambda server, clients, count: [("GET", url, None)] * count

    bulk_used = {"groupwire": 0, "floor": 0}

    def bulk(size: int) -> Callable[[str, int, int], list[Request_]]:
        def requests(server: str, clients: int, count: int) -> list[Request_]:
            out = []
            for _ in range(count):
                gid = seed.bulk_groups[server][bulk_used[server]]
                bulk_used[server] += 1
                body = dump({"add": customers[:size]})
                out.append(("POST", f"/admin/customer-groups/{gid}/customers", body))
            return out

        return requests

    small, large = sizes["bulk"]
    return [
        Scenario("list 100 groups", "read", reads("/admin/customer-groups?limit=100"), n, True),
        Scenario(
            f"group + {members} members",
            "read",
            reads(f"/admin/customer-groups/{seed.big_group}?fields=*customers"),
            max(4, n // 5),
            True,
        ),
        Scenario(
            "customer + its groups",
            "read",
            reads(f"/admin/customers/{seed.member_of}?fields=*groups"),
            n,
            True,
        ),
        Scenario("create customer", "write", create, n),
        Scenario("add one member", "write", add_one, n),
        Scenario("update a group", "write", update, n),
        Scenario(f"bulk add {small:,}", "bulk", bulk(small), sizes["bulk_repeats"][0]),
        Scenario(f"bulk add {large:,}", "bulk", bulk(large), sizes["bulk_repeats"][1]),
    ]


@dataclass
class Row:
    backend: str
    scenario: str
    kind: str
    clients: int
    groupwire: Result
    floor: Result

    @property
    def ratio(self) -> float:
        return self.groupwire.quantile(0.5) / self.floor.quantile(0.5)


async def measure(
    backend: str,
    urls: dict[str, str],
    secret: str,
    plan: list[Scenario],
    client_counts: list[int],
    watch: RssWatch,
) -> list[Row]:
    rows: list[Row] = []
    headers = {"Authorization": f"Bearer {secret}"}
    most = max(client_counts)
    limits = httpx.Limits(max_connections=most, max_keepalive_connections=most)
    async with (
        httpx.AsyncClient(
            base_url=urls["groupwire"], headers=headers, limits=limits, timeout=300
        ) as gw,
        httpx.AsyncClient(base_url=urls["floor"], limits=limits, timeout=300) as floor,
    ):
        for scenario in plan:
            counts = [1] if scenario.kind == "bulk" else client_counts
            for clients in counts:
                results: dict[str, Result] = {}
                for server, client in (("groupwire", gw), ("floor", floor)):
                    if scenario.kind == "read":  # warm-up: connections, caches, compiled SQL
                        warm = scenario.requests(server, clients, clients * 2)
                        await drive(client, warm, clients)
                    requests = scenario.requests(server, clients, scenario.count)
                    watch.measuring = clients == most
                    results[server] = await drive(client, requests, clients)
                    watch.measuring = False
                if scenario.same_bytes and results["groupwire"].body != results["floor"].body:
                    raise SystemExit(
                        f"{scenario.name}: the floor's answer differs from Groupwire's:\n"
                        f"{results['groupwire'].body[:300]!r}\n{results['floor'].body[:300]!r}"
                    )
                row = Row(backend, scenario.name, scenario.kind, clients, **results)
                rows.append(row)
                print_row(row)
    return rows


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f}"


def print_header() -> None:
    print(
        f"{'backend':<8} {'scenario':<24} {'cl':>3} | {'gw p50':>8} {'gw p99':>8} {'gw/s':>7}"
        f" | {'fl p50':>8} {'fl p99':>8} {'fl/s':>7} | {'p50 x':>6} {'target':>6}",
        flush=True,
    )


def print_row(row: Row) -> None:
    g, f = row.groupwire, row.floor
    target = TARGETS[row.kind]
    verdict = "ok" if row.ratio <= target else "OVER"
    print(
        f"{row.backend:<8} {row.scenario:<24} {row.clients:>3} |"
        f" {ms(g.quantile(0.5))} {ms(g.quantile(0.99))} {g.rate:7.1f} |"
        f" {ms(f.quantile(0.5))} {ms(f.quantile(0.99))} {f.rate:7.1f} |"
        f" {row.ratio:6.2f} {target:5.1f}x {verdict}",
        flush=True,
    )


class PeakRss(RssWatch):
    """RSS of the Groupwire server, sampled only while the concurrent load runs."""

    measuring = False

    def _sample(self) -> None:
        while not self._stop.is_set():
            if self.measuring:
                self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(0.05)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def run_backend(backend: str, args: argparse.Namespace, sizes: dict[str, Any]) -> list[Row]:
    from groupwire.auth import keys
    from groupwire.store.engine import create_store_engine

    clients = args.clients
    bulk_groups = sum(sizes["bulk_repeats"])
    customers = max(sizes["bulk"][1], sizes["members"], sizes["requests"] * 2)
    seed, rows = seed_rows(customers, sizes["members"], bulk_groups, clients)
    with tempfile.TemporaryDirectory() as tmp, databases(backend, args.postgres, Path(tmp)) as db:
        for url in db.values():
            load_rows(url, rows)
        engine = create_store_engine(db["groupwire"])
        _, secret = keys.create_key(engine, "bench", ["write"])
        engine.dispose()
        env = {
            "GROUPWIRE_DATABASE_URL": db["groupwire"],
            "GROUPWIRE_LOAD_ENTRY_POINTS": "false",
            "FLOOR_DATABASE_URL": db["floor"].replace("postgresql+psycopg://", "postgresql://"),
        }
        with (
            server("groupwire.api.asgi:create_app_from_env", env, args.workers) as (gw_url, pid),
            server("api_floor:floor_app", env, args.workers) as (floor_url, _),
            PeakRss(pid) as watch,
        ):
            plan = scenarios(seed, sizes)
            if args.only:
                # (a comma before a digit belongs to a name: "bulk add 10,000")
                wanted = {name.strip() for name in re.split(r",(?!\d)", args.only)}
                plan = [scenario for scenario in plan if scenario.name in wanted]
            client_counts = sorted({1, clients})
            urls = {"groupwire": gw_url, "floor": floor_url}
            result = asyncio.run(measure(backend, urls, secret, plan, client_counts, watch))
        print(
            f"{backend:<8} Groupwire server RSS under {clients} clients: peak {watch.peak:.0f} MB"
            f" (target < {RSS_TARGET_MB} MB)",
            flush=True,
        )
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres", default="postgresql://127.0.0.1:5432/test", help="admin URL")
    parser.add_argument("--requests", type=int, default=300, help="per scenario and load")
    parser.add_argument("--clients", type=int, default=16, help="the concurrent load")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of each server")
    parser.add_argument("--only", default="", help="comma-separated scenario names (default: all)")
    args = parser.parse_args()
    if args.quick:
        sizes = {"requests": 12, "members": 100, "bulk": (500, 2000), "bulk_repeats": (1, 1)}
        args.clients = min(args.clients, 4)
    else:
        sizes = {
            "requests": args.requests,
            "members": 1000,
            "bulk": (10_000, 100_000),
            "bulk_repeats": (5, 2),
        }
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print_header()
    rows: list[Row] = []
    for backend in backends:
        rows += run_backend(backend, args, sizes)
    over = [row for row in rows if row.ratio > TARGETS[row.kind]]
    print(f"{len(rows) - len(over)} of {len(rows)} measurements within their target ratio")


if __name__ == "__main__":
    main()
