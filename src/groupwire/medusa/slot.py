"""The replication slot and publication on Medusa's database, and reading through them.

Capture reads Medusa's committed changes with PostgreSQL's logical decoding, output plugin
``pgoutput`` (built in, allowed on managed PostgreSQL services) and a publication on Medusa's
four customer tables and its ``order`` and ``order_summary`` tables (:data:`TABLES`). It
uses the SQL interface on an ordinary connection:

- ``pg_logical_slot_peek_binary_changes`` reads whole committed transactions, in commit order,
  without consuming them;
- ``pg_replication_slot_advance`` confirms them once Groupwire has committed their effect, so
  that PostgreSQL may recycle the WAL behind them.

Only the slot's creation uses the replication protocol (a ``replication=database``
connection): ``CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export')`` hands out a snapshot that
sees exactly the transactions committed before the slot's consistent point, which is how the
initial copy of the tables and the stream fit together with nothing missed or doubled.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

TABLES = (
    "customer_group",
    "customer_group_customer",
    "customer",
    "customer_address",
    "order",
    "order_summary",
)
"""Medusa's tables capture reads: the publication's tables, the initial copy's, the decoder's."""
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def lsn_to_int(text: str) -> int:
    """``"16/B374D848"`` -> its 64-bit position."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_to_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def check_name(name: str, what: str) -> str:
    """Slot and publication names: lower-case letters, digits and ``_`` (PostgreSQL's rule
    for slots, kept for publications too)."""
    if not NAME.match(name):
        raise ValueError(f"{what} must be 1-63 of a-z, 0-9 and _, starting with a letter: {name!r}")
    return name


def connect(url: str, **options: Any) -> psycopg.Connection[Any]:
    """An autocommit connection to Medusa's database, with the date format the row loaders
    expect (see ``groupwire.medusa.rows``)."""
    conn = psycopg.connect(_libpq_url(url), autocommit=True, **options)
    if not options.get("replication"):
        conn.execute("SET DateStyle = ISO; SET TimeZone = 'UTC'")
    return conn


def _libpq_url(url: str) -> str:
    """Accept SQLAlchemy's ``postgresql+psycopg://`` spelling too."""
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)


class SlotInUse(RuntimeError):
    """The slot is read by a running process (a capture) and cannot be dropped."""


@dataclass(frozen=True)
class SlotState:
    """A slot as ``pg_replication_slots`` describes it, plus the WAL it holds back."""

    name: str
    active: bool
    restart_lsn: int | None
    confirmed_flush_lsn: int | None
    current_lsn: int
    wal_status: str | None

    @property
    def lag_bytes(self) -> int:
        """WAL written since the last confirmed position: what the slot keeps from being
        recycled (and what capture has yet to read)."""
        if self.confirmed_flush_lsn is None:
            return 0
        return max(0, self.current_lsn - self.confirmed_flush_lsn)


class PublicationError(RuntimeError):
    """The publication lacks some of :data:`TABLES` and this role may not add them."""


def ensure_publication(
    conn: psycopg.Connection[Any], publication: str, schema: str
) -> tuple[str, ...] | None:
    """Create the publication on :data:`TABLES` unless it exists; None if created, else the
    tables it lacked and were added to it now (a publication made before capture read
    orders lacks ``order`` and ``order_summary``). Adding needs the tables' ownership: when
    refused, :class:`PublicationError` says what the owner must run."""
    check_name(publication, "publication")
    exists = conn.execute(
        "SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)
    ).fetchone()
    if not exists:
        tables = sql.SQL(", ").join(sql.Identifier(schema, table) for table in TABLES)
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(publication), tables
            )
        )
        return None
    present = {
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = %s AND schemaname = %s",
            (publication, schema),
        )
    }
    missing = tuple(table for table in TABLES if table not in present)
    if not missing:
        return ()
    command = sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
        sql.Identifier(publication),
        sql.SQL(", ").join(sql.Identifier(schema, table) for table in missing),
    )
    try:
        conn.execute(command)
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectNotInPrerequisiteState):
        raise PublicationError(
            f"publication {publication!r} lacks the tables {', '.join(missing)} and this role"
            f" may not add them: as the owner of Medusa's tables, run"
            f" `{command.as_string(conn)}`, then start capture again"
        ) from None
    return missing


def slot_state(conn: psycopg.Connection[Any], slot: str) -> SlotState | None:
    row = conn.execute(
        "SELECT slot_name, active, restart_lsn::text, confirmed_flush_lsn::text,"
        " pg_current_wal_lsn()::text, wal_status"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return None
    return SlotState(
        name=row[0],
        active=bool(row[1]),
        restart_lsn=lsn_to_int(row[2]) if row[2] else None,
        confirmed_flush_lsn=lsn_to_int(row[3]) if row[3] else None,
        current_lsn=lsn_to_int(row[4]),
        wal_status=row[5],
    )


@dataclass(frozen=True)
class NewSlot:
    """A slot just created: its consistent point and the snapshot that goes with it."""

    name: str
    consistent_lsn: int
    snapshot: str


@contextmanager
def create_slot(url: str, slot: str) -> Iterator[NewSlot]:
    """Create a ``pgoutput`` slot and keep its exported snapshot usable inside the block.

    The snapshot stays valid only while the replication connection that created it is open
    and idle: read the initial copy with :func:`snapshot_connection` inside the block.
    """
    check_name(slot, "slot")
    with connect(url, replication="database") as replication:
        # The walsender speaks the simple query protocol only: send the command as is.
        command = f"CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput (SNAPSHOT 'export')"
        result = replication.pgconn.exec_(command.encode())
        if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise psycopg.OperationalError(f"creating the replication slot failed: {message}")
        lsn = lsn_to_int(bytes(result.get_value(0, 1) or b"").decode())
        snapshot = bytes(result.get_value(0, 2) or b"").decode()
        yield NewSlot(slot, lsn, snapshot)


@contextmanager
def snapshot_connection(url: str, snapshot: str) -> Iterator[psycopg.Connection[Any]]:
    """A REPEATABLE READ, read-only transaction that sees exactly ``snapshot``."""
    with connect(url) as conn:
        conn.autocommit = False
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        try:
            yield conn
        finally:
            conn.rollback()


def peek(
    conn: psycopg.Connection[Any], slot: str, publication: str, upto_changes: int
) -> list[tuple[int, int, bytes]]:
    """Messages of whole committed transactions after the slot's confirmed position:
    ``(lsn, xid, message bytes)``. At least ``upto_changes`` messages when there are that
    many, more to finish the last transaction (PostgreSQL only stops at a commit)."""
    rows = conn.execute(
        "SELECT lsn::text, xid::text::bigint, data"
        " FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s,"
        " 'proto_version', '1', 'publication_names', %s)",
        (slot, upto_changes, publication),
    ).fetchall()
    return [(lsn_to_int(lsn), int(xid), bytes(data)) for lsn, xid, data in rows]


def advance(conn: psycopg.Connection[Any], slot: str, lsn: int) -> None:
    """Confirm everything up to ``lsn``: the slot will not hand it out again."""
    conn.execute(
        "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (slot, lsn_to_text(lsn))
    ).fetchall()


def drop(
    conn: psycopg.Connection[Any], slot: str, publication: str, wait: float = 10.0
) -> tuple[bool, bool]:
    """Drop the slot and the publication if they exist: (slot dropped, publication dropped).

    A slot still read by a process cannot be dropped: a capture that was just stopped (its
    walsender takes a moment to exit) is waited for up to ``wait`` seconds; a slot still in
    use after that raises :class:`SlotInUse`."""
    check_name(slot, "slot")
    check_name(publication, "publication")
    deadline = time.monotonic() + wait
    while (state := slot_state(conn, slot)) is not None and state.active:
        if time.monotonic() >= deadline:
            pid = conn.execute(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            raise SlotInUse(
                f"replication slot {slot!r} is in use by process {pid[0] if pid else '?'}:"
                " stop the capture that reads it first"
            )
        time.sleep(0.05)
    dropped_slot = state is not None
    if dropped_slot:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    dropped_publication = (
        conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()
        is not None
    )
    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
    return dropped_slot, dropped_publication


__all__ = [
    "TABLES",
    "NewSlot",
    "PublicationError",
    "SlotInUse",
    "SlotState",
    "advance",
    "check_name",
    "connect",
    "create_slot",
    "drop",
    "ensure_publication",
    "lsn_to_int",
    "lsn_to_text",
    "peek",
    "slot_state",
    "snapshot_connection",
]
