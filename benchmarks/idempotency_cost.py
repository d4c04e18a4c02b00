"""Cost of ``Idempotency-Key`` on a single write (run on demand, not in CI):
``uv run python benchmarks/idempotency_cost.py [--postgres postgresql://127.0.0.1/test]``.

Drives the Admin API in process (Starlette's test client, one request at a time, no network)
so that the figure is the server's own cost. Per backend, in the same run and on the same
database, the same single write is measured without and with a key (a fresh key each time):

* ``create group``: ``POST /admin/customer-groups {"name": ...}``;
* ``add 1 customer``: ``POST /admin/customer-groups/{id}/customers {"add": [one id]}``.

The two variants alternate request by request, so drift hits both alike. Prints the median
latency of each and the ratio with/without a key (the target is at most 1.2x), plus the cost
of a replay (the same key again) against a fresh write.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text

from groupwire import Groupwire
from groupwire.api import create_app
from groupwire.auth import keys

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

GROUPS = "/admin/customer-groups"


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def ok(response: object) -> None:
    status = getattr(response, "status_code", 0)
    if status != 200:
        raise SystemExit(f"unexpected {status}: {getattr(response, 'text', '')}")


def measure(url: str, writes: int) -> list[tuple[str, float, float]]:
    """(scenario, median seconds without key, median seconds with key) per scenario."""
    gw = Groupwire.open(url, load_entry_points=False)
    try:
        _, secret = keys.create_key(gw.engine, "bench", ["write"])
        group = gw.groups.create("members").id
        customers = [gw.customers.create(f"c{i}@bench.test").id for i in range(writes * 2 + 10)]
        spare = iter(customers)
        client = TestClient(create_app(gw), headers={"Authorization": f"Bearer {secret}"})
        counter = iter(range(10**9))

        def create(key: bool) -> float:
            headers = {"Idempotency-Key": uuid.uuid4().hex} if key else {}
            body = {"name": f"g{next(counter)}"}
            return timed(lambda: ok(client.post(GROUPS, json=body, headers=headers)))

        def add(key: bool) -> float:
            headers = {"Idempotency-Key": uuid.uuid4().hex} if key else {}
            body = {"add": [next(spare)]}
            path = f"{GROUPS}/{group}/customers"
            return timed(lambda: ok(client.post(path, json=body, headers=headers)))

        for _ in range(20):  # warm-up: connections, caches, code paths
            create(False)
            create(True)
        results = []
        for name, write in (("create group", create), ("add 1 customer", add)):
            plain: list[float] = []
            keyed: list[float] = []
            for _ in range(writes):  # alternate, so that the machine's drift hits both alike
                plain.append(write(False))
                keyed.append(write(True))
            results.append((name, statistics.median(plain), statistics.median(keyed)))

        replays: list[float] = []
        fresh: list[float] = []
        for _ in range(writes // 2):
            key = {"Idempotency-Key": uuid.uuid4().hex}
            body = {"name": f"r{next(counter)}"}
            fresh.append(timed(lambda: ok(client.post(GROUPS, json=body, headers=key))))  # noqa: B023
            replays.append(timed(lambda: ok(client.post(GROUPS, json=body, headers=key))))  # noqa: B023
        results.append(
            ("replay vs fresh write", statistics.median(fresh), statistics.median(replays))
        )
        client.close()
    finally:
        gw.close()
    return results


def postgres_schema(url: str) -> tuple[str, Callable[[], None]]:
    """A throw-away schema in the given database, and its cleanup."""
    admin = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000, help="per scenario and variant")
    parser.add_argument("--postgres", help="also measure on this PostgreSQL database")
    args = parser.parse_args()

    runs: list[tuple[str, list[tuple[str, float, float]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite:///{Path(tmp) / 'bench.db'}"
        runs.append(("SQLite", measure(sqlite, args.writes)))
    if args.postgres:
        url, drop = postgres_schema(args.postgres)
        try:
            runs.append(("PostgreSQL", measure(url, args.writes)))
        finally:
            drop()

    print(f"in-process Admin API, one request at a time, {args.writes} writes per variant")
    print(f"{'backend':<12}{'scenario':<24}{'without ms':>12}{'with ms':>10}{'with/without':>14}")
    print("(median latency per request)")
    for backend, results in runs:
        for name, without, with_key in results:
            print(
                f"{backend:<12}{name:<24}{without * 1e3:>12.3f}{with_key * 1e3:>10.3f}"
                f"{with_key / without:>14.2f}x"
            )
    print("replay row: 'without' is the first (fresh) write, 'with' its replay by key")


if __name__ == "__main__":
    main()
