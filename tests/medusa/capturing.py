"""Helpers of the capture tests: a Groupwire store capturing from the harness's Medusa."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from groupwire import Groupwire
from groupwire.medusa import CaptureOptions, MedusaCapture
from groupwire.medusa import slot as slots
from tests.medusa.harness import MedusaServer


@dataclass
class Captured:
    """A Groupwire store, the capture feeding it, and Medusa's database."""

    gw: Groupwire
    capture: MedusaCapture
    medusa: MedusaServer
    options: CaptureOptions

    def sync(self, timeout: float = 60.0) -> None:
        """Apply everything Medusa has committed so far (the API answers after its commit):
        a mark written into Medusa's WAL now, then the stream read and applied past it."""
        self.capture.catch_up(wal_mark(self.medusa.database_url), timeout)

    def mark(self) -> int:
        return self.gw.events.last_sequence()

    def events_since(self, mark: int) -> list[tuple[str, dict[str, Any]]]:
        return [(e.type, e.data) for e in self.gw.events.list(after=mark, limit=None)]

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(slots._libpq_url(self.medusa.database_url), autocommit=True) as c:
            cursor = c.execute(query, params)
            return cursor.fetchall() if cursor.description else []


def wal_mark(medusa_url: str) -> int:
    """A position in Medusa's WAL after every commit so far: the end of a transactional
    logical decoding message, committed (so flushed) at once. ``pgoutput`` with protocol 1
    does not send such messages, so capture sees only the WAL move past them."""
    with slots.connect(medusa_url) as conn:
        row = conn.execute("SELECT pg_logical_emit_message(true, 'groupwire-test', '')::text")
        return slots.lsn_to_int(row.fetchone()[0])  # type: ignore[index]


def wait_until_inactive(medusa_url: str, slot: str, timeout: float = 30.0) -> None:
    """Until no process reads ``slot`` (a closed stream's walsender takes a moment to exit)."""
    deadline = time.monotonic() + timeout
    with slots.connect(medusa_url) as conn:
        while (state := slots.slot_state(conn, slot)) is not None and state.active:
            if time.monotonic() > deadline:
                raise AssertionError(f"slot {slot} is still active")
            time.sleep(0.05)


def new_names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return f"gw_test_{suffix}", f"gw_test_pub_{suffix}"


def drop_slot(medusa_url: str, slot: str, publication: str) -> None:
    with slots.connect(medusa_url) as conn:
        row = conn.execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
        if row and row[0]:
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        slots.drop(conn, slot, publication)


@contextmanager
def capturing(medusa: MedusaServer, database_url: str, **options: Any) -> Iterator[Captured]:
    """A capture installed on the harness's Medusa (its own slot and publication, dropped
    afterwards) into a fresh Groupwire store at ``database_url``."""
    slot, publication = new_names()
    config = CaptureOptions(
        medusa_url=medusa.database_url, slot=slot, publication=publication, **options
    )
    gw = Groupwire.open(database_url, load_entry_points=False, plugins=[])
    capture = MedusaCapture(gw.service, config)
    try:
        capture.install()
        yield Captured(gw, capture, medusa, config)
    finally:
        capture.close()
        drop_slot(medusa.database_url, slot, publication)
        gw.close()


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json())


def create_group(medusa: MedusaServer, **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"Group {uuid.uuid4().hex[:8]}")
    return ok(medusa.client.post("/admin/customer-groups", json=body))["customer_group"]
