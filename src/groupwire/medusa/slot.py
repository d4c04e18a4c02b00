"""The publication and the replication slot on Medusa's database: creating, describing and
dropping them. Reading the slot is ``groupwire.medusa.stream``'s (the streaming replication
protocol).

Capture reads Medusa's committed changes with PostgreSQL's logical decoding, output plugin
``pgoutput`` (built in, allowed on managed PostgreSQL services), and a publication on Medusa's
customer tables and its ``order`` and ``order_summary`` tables (:data:`TABLES`, the one list
of them: the publication is created from it and the statements printed for a store's
operator follow it).

The slot is created over the replication protocol (a ``replication=database`` connection):
``CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export')`` hands out a snapshot that sees exactly
the transactions committed before the slot's consistent point, which is how the initial copy
of the tables and the stream fit together with nothing missed or doubled. Everything else here
(the publication, the slot's state, dropping both) is plain SQL on an ordinary connection.
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
    """``reserved`` / ``extended``: the WAL the slot needs is kept; ``unreserved``: past
    ``max_slot_wal_keep_size``, removed at the next checkpoint unless capture catches up;
    ``lost``: removed, the slot is invalidated (see :func:`invalidated_way_out`)."""
    safe_wal_size: int | None
    """WAL that may still be written before the slot is at risk of ``lost`` (NULL, None here,
    without ``max_slot_wal_keep_size``)."""

    @property
    def invalidated(self) -> bool:
        return self.wal_status == "lost"

    @property
    def lag_bytes(self) -> int:
        """WAL written since the last confirmed position: what the slot keeps from being
        recycled (and what capture has yet to read)."""
        if self.confirmed_flush_lsn is None:
            return 0
        return max(0, self.current_lsn - self.confirmed_flush_lsn)


class PublicationDenied(RuntimeError):
    """The role may not create the publication, or add to it the tables it lacks; the message
    says what is missing and the statements that would fix it."""


def publication_statement(publication: str, schema: str) -> sql.Composed:
    """``CREATE PUBLICATION ... FOR TABLE`` the tables of :data:`TABLES` in ``schema``."""
    tables = sql.SQL(", ").join(sql.Identifier(schema, table) for table in TABLES)
    return sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(publication), tables)


def ensure_publication(
    conn: psycopg.Connection[Any], publication: str, schema: str
) -> tuple[str, ...] | None:
    """Create the publication on :data:`TABLES` unless it exists; None if created, else the
    tables it lacked and were added to it now (a publication made before capture read
    orders lacks ``order`` and ``order_summary``).

    Raises :class:`PublicationDenied` when the role may not: ``CREATE PUBLICATION ... FOR
    TABLE`` needs ``CREATE`` on the database and ownership of the tables, adding a table
    needs its ownership."""
    check_name(publication, "publication")
    exists = conn.execute(
        "SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)
    ).fetchone()
    if not exists:
        try:
            conn.execute(publication_statement(publication, schema))
        except psycopg.errors.InsufficientPrivilege as error:
            raise PublicationDenied(_publication_denied(conn, publication, schema, error)) from None
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
        raise PublicationDenied(
            f"publication {publication!r} lacks the tables {', '.join(missing)} and this role"
            f" may not add them: as the owner of Medusa's tables, run"
            f" `{command.as_string(conn)}`, then start capture again"
        ) from None
    return missing


def _publication_denied(
    conn: psycopg.Connection[Any], publication: str, schema: str, error: psycopg.Error
) -> str:
    """What the role lacks to create the publication, and what the owner can run instead."""
    role, database, may_create = conn.execute(
        "SELECT current_user, current_database(),"
        " has_database_privilege(current_database(), 'CREATE')"
    ).fetchone() or ("?", "?", False)
    owners = conn.execute(
        "SELECT c.relname, pg_get_userbyid(c.relowner), pg_has_role(c.relowner, 'USAGE')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = ANY(%s) ORDER BY c.relname",
        (schema, list(TABLES)),
    ).fetchall()
    not_owned = [(table, owner) for table, owner, owns in owners if not owns]
    missing = []
    if not may_create:
        missing.append(f"CREATE on database {database}")
    if not_owned:
        owned_by = sorted({owner for _, owner in not_owned})
        missing.append(
            f"ownership of the tables {', '.join(t for t, _ in not_owned)}"
            f" (owned by {', '.join(owned_by)})"
        )
    owner = not_owned[0][1] if not_owned else "a superuser"
    create = publication_statement(publication, schema).as_string(conn)
    text = (
        f"role {role} may not create the publication {publication}"
        f" ({str(error).strip().splitlines()[0]}): CREATE PUBLICATION ... FOR TABLE needs"
        f" CREATE on the database and ownership of the tables, and {role} lacks"
        f" {' and '.join(missing) or 'one of them'}. Have {owner} create it once, then start"
        f" capture again (it uses the publication as it is):\n    {create};"
    )
    if not may_create and not not_owned:
        grant = sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
            sql.Identifier(database), sql.Identifier(role)
        )
        text += f"\nor let {role} create it:\n    {grant.as_string(conn)};"
    return text


def slot_state(conn: psycopg.Connection[Any], slot: str) -> SlotState | None:
    row = conn.execute(
        "SELECT slot_name, active, restart_lsn::text, confirmed_flush_lsn::text,"
        " pg_current_wal_lsn()::text, wal_status, safe_wal_size"
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
        safe_wal_size=None if row[6] is None else int(row[6]),
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


def invalidated_way_out(slot: str) -> str:
    """What to say about an invalidated slot (``wal_status`` ``lost``), and the way out:
    capture refuses to start on it, ``status`` and ``/health`` show it. The one place of this
    message."""
    return (
        f"replication slot {slot!r} is invalidated (wal_status 'lost'): it fell more than"
        " max_slot_wal_keep_size behind and PostgreSQL removed the WAL it held, so the changes"
        " made in Medusa since capture last read it cannot be read any more. The way out, on"
        " the same store: `groupwire medusa capture --resync` drops this slot, creates a new"
        " one and records every difference between Medusa and Groupwire's copy as events"
        " (docs/medusa.md, Recovery)"
    )


@dataclass(frozen=True)
class Uninstalled:
    """What ``drop`` did: for the slot and the publication each, ``"dropped"``, ``"already
    gone"`` or ``"left"`` (the role may not drop it: ``owner_sql`` is what someone who may
    must run, ``why`` what PostgreSQL said)."""

    slot: str
    publication: str
    owner_sql: list[str]
    why: list[str]

    @property
    def complete(self) -> bool:
        return not self.owner_sql


def drop(
    conn: psycopg.Connection[Any], slot: str, publication: str, wait: float = 10.0
) -> Uninstalled:
    """Drop the slot, then the publication, each if it exists and as far as the role may.

    A slot still read by a process cannot be dropped: a capture that was just stopped (its
    walsender takes a moment to exit) is waited for up to ``wait`` seconds; a slot still in
    use after that raises :class:`SlotInUse`, and nothing is dropped. A publication the role
    may not drop (created by the tables' owner, as the guide recommends when the capture role
    may not) is left, with the statement its owner must run: running this again is safe, and
    tells what is already gone."""
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
    owner_sql: list[str] = []
    why: list[str] = []
    slot_done = "already gone"
    if state is not None:
        drop_slot = sql.SQL("SELECT pg_drop_replication_slot({})").format(sql.Literal(slot))
        try:
            conn.execute(drop_slot)
            slot_done = "dropped"
        except psycopg.errors.InsufficientPrivilege as error:
            slot_done = "left"
            owner_sql.append(drop_slot.as_string(conn) + ";")
            why.append(str(error).strip().splitlines()[0])
    publication_done = "already gone"
    owner = conn.execute(
        "SELECT pg_get_userbyid(pubowner) FROM pg_publication WHERE pubname = %s",
        (publication,),
    ).fetchone()
    if owner is not None:
        drop_publication = sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
            sql.Identifier(publication)
        )
        try:
            conn.execute(drop_publication)
            publication_done = "dropped"
        except psycopg.errors.InsufficientPrivilege as error:
            publication_done = "left"
            owner_sql.append(drop_publication.as_string(conn) + ";")
            why.append(f"{str(error).strip().splitlines()[0]} (its owner: {owner[0]})")
    return Uninstalled(slot_done, publication_done, owner_sql, why)


__all__ = [
    "TABLES",
    "NewSlot",
    "PublicationDenied",
    "SlotInUse",
    "SlotState",
    "Uninstalled",
    "check_name",
    "connect",
    "create_slot",
    "drop",
    "ensure_publication",
    "invalidated_way_out",
    "lsn_to_int",
    "lsn_to_text",
    "publication_statement",
    "slot_state",
    "snapshot_connection",
]
