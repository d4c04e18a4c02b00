"""What smart groups read and write: the rules, a customer's snapshot for the Python
evaluator, and the set-based differences (who joins, who leaves) for the SQL one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, exists, func, not_, select
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite

from groupwire.domain.models import CustomerGroup
from groupwire.domain.rules import Rule, Snapshot
from groupwire.store import address_repository, orders, tables
from groupwire.store import repository as repo
from groupwire.store.rules import rule_condition

C = tables.customer
G = tables.customer_group
M = tables.membership
F = tables.smart_group_flip
S = tables.smart_group_sweep
_COUNTER = tables.outbox_counter
_RULES_VERSION = select(_COUNTER.c.rules_version).where(_COUNTER.c.id == 1)
_SMART = select(G).where(G.c.deleted_at.is_(None), G.c.rule.is_not(None)).order_by(G.c.id)


def rules_version(conn: Connection) -> int:
    """The counter of rule changes (``outbox_counter.rules_version``), read without a lock."""
    return int(conn.execute(_RULES_VERSION).scalar_one())


def smart_groups(conn: Connection) -> list[CustomerGroup]:
    """Every live group that has a rule."""
    return [repo.to_group(row) for row in conn.execute(_SMART).mappings()]


def lock_customers(conn: Connection, customer_ids: Sequence[str]) -> None:
    """Lock live customers for update, in id order (PostgreSQL; SQLite's writers are
    serialised already), so that one customer's rules are decided by one change at a time."""
    if conn.dialect.name != "postgresql" or not customer_ids:
        return
    query = (
        select(C.c.id)
        .where(C.c.id.in_(sorted(customer_ids)), C.c.deleted_at.is_(None))
        .order_by(C.c.id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: memberships may still refer
    )
    conn.execute(query).all()


def snapshots(
    conn: Connection, customer_ids: Sequence[str], *, addresses: bool, with_orders: bool
) -> dict[str, Snapshot]:
    """The live customers among ``customer_ids`` as rules see them (addresses and orders
    read only when a rule needs them)."""
    customers = repo.get_customers(conn, customer_ids)
    ids = list(customers)
    owned = address_repository.addresses_of_customers(conn, ids) if addresses and ids else {}
    placed = orders.orders_of(conn, ids) if with_orders else {}
    groups: dict[str, set[str]] = {cid: set() for cid in ids}
    if ids:
        query = (
            select(M.c.customer_id, M.c.customer_group_id)
            .join(G, G.c.id == M.c.customer_group_id)
            .where(M.c.customer_id.in_(ids), G.c.deleted_at.is_(None))
        )
        for cid, gid in conn.execute(query):
            groups[cid].add(gid)
    return {
        cid: Snapshot(
            customer=customer,
            addresses=owned.get(cid, []),
            orders=placed.get(cid, []),
            group_ids=frozenset(groups[cid]),
        )
        for cid, customer in customers.items()
    }


def _is_member(group_id: str) -> Any:
    return exists(
        select(M.c.customer_id).where(M.c.customer_group_id == group_id, M.c.customer_id == C.c.id)
    )


def joining_ids(
    conn: Connection, group_id: str, rule: Rule, now: datetime, after: str, limit: int
) -> list[str]:
    """Up to ``limit`` customers past id ``after`` whom ``rule`` makes members and who are
    not, in id order."""
    dialect = conn.dialect.name
    query = (
        select(C.c.id)
        .where(C.c.id > after, rule_condition(rule, dialect, now), not_(_is_member(group_id)))
        .order_by(C.c.id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def leaving_ids(
    conn: Connection, group_id: str, rule: Rule, now: datetime, after: str, limit: int
) -> list[str]:
    """Up to ``limit`` members past id ``after`` whom ``rule`` no longer makes members."""
    dialect = conn.dialect.name
    query = (
        select(M.c.customer_id)
        .join(C, C.c.id == M.c.customer_id)
        .where(
            and_(
                M.c.customer_group_id == group_id,
                M.c.customer_id > after,
                not_(rule_condition(rule, dialect, now)),
            )
        )
        .order_by(M.c.customer_id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def count_joining(conn: Connection, group_id: str, rule: Rule, now: datetime) -> int:
    query = select(func.count()).where(
        rule_condition(rule, conn.dialect.name, now), not_(_is_member(group_id))
    )
    return int(conn.execute(query).scalar_one())


def count_leaving(conn: Connection, group_id: str, rule: Rule, now: datetime) -> int:
    query = (
        select(func.count())
        .select_from(M.join(C, C.c.id == M.c.customer_id))
        .where(
            M.c.customer_group_id == group_id, not_(rule_condition(rule, conn.dialect.name, now))
        )
    )
    return int(conn.execute(query).scalar_one())


# --- the scheduler's flips ---------------------------------------------------------------------


def _upsert(conn: Connection) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(F)


def write_flips(
    conn: Connection,
    group_id: str,
    customer_ids: Sequence[str],
    flips: dict[str, datetime],
) -> None:
    """Make the flips of ``group_id`` among ``customer_ids`` exactly ``flips`` (customer ->
    its next flip; a customer left out has none)."""
    gone = [cid for cid in customer_ids if cid not in flips]
    for part in repo.chunks(gone, 5000):
        conn.execute(delete(F).where(F.c.customer_group_id == group_id, F.c.customer_id.in_(part)))
    if flips:
        rows = [
            {"customer_group_id": group_id, "customer_id": cid, "flip_at": at}
            for cid, at in flips.items()
        ]
        insert = _upsert(conn)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[F.c.customer_group_id, F.c.customer_id],
                set_={"flip_at": insert.excluded.flip_at},
            ),
            rows,
        )


def drop_flips(conn: Connection, group_id: str) -> None:
    """No more flips for ``group_id`` (its rule reads no time, or it has none)."""
    conn.execute(delete(F).where(F.c.customer_group_id == group_id))
    conn.execute(delete(S).where(S.c.customer_group_id == group_id))


def sweep_everyone(
    conn: Connection, group_id: str, at: datetime, trigger: str = "schedule"
) -> None:
    """Every live customer is to be decided again for ``group_id`` from ``at`` (``schedule``:
    a rule reading time was applied to everyone; ``rule_changed``: a rule saved with
    ``stream``, applied by the sweep): the group's flips go, a sweep starts over."""
    drop_flips(conn, group_id)
    conn.execute(
        S.insert().values(customer_group_id=group_id, after_id="", due_at=at, trigger=trigger)
    )


@dataclass(frozen=True, slots=True)
class SweepBatch:
    group_id: str
    trigger: str
    customer_ids: list[str]
    ended: bool


_CLAIM_SWEEP_PG = sql_text(
    "SELECT customer_group_id, after_id, trigger FROM smart_group_sweep WHERE due_at <= :now"
    " ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED"
).bindparams(bindparam("now", type_=tables.UTCDateTime()))
_CLAIM_GROUP_SWEEP_PG = sql_text(
    "SELECT customer_group_id, after_id, trigger FROM smart_group_sweep"
    " WHERE customer_group_id = :group_id FOR UPDATE SKIP LOCKED"
)


def claim_sweep(
    conn: Connection, now: datetime, limit: int, group_id: str | None = None
) -> SweepBatch | None:
    """The next ``limit`` live customers of a sweep due at ``now`` (of ``group_id``'s sweep,
    due or not, when given), the sweep advanced past them or ended; None: no sweep, or held
    by another transaction."""
    if conn.dialect.name == "postgresql":
        if group_id is None:
            row = conn.execute(_CLAIM_SWEEP_PG, {"now": now}).first()
        else:
            row = conn.execute(_CLAIM_GROUP_SWEEP_PG, {"group_id": group_id}).first()
    else:
        query = select(S.c.customer_group_id, S.c.after_id, S.c.trigger)
        if group_id is None:
            query = query.where(S.c.due_at <= now).order_by(S.c.due_at)
        else:
            query = query.where(S.c.customer_group_id == group_id)
        row = conn.execute(query.limit(1)).first()
    if row is None:
        return None
    swept, after, trigger = str(row[0]), str(row[1]), str(row[2])
    query = select(C.c.id).where(C.c.id > after, C.c.deleted_at.is_(None)).order_by(C.c.id)
    ids = [str(cid) for cid in conn.execute(query.limit(limit)).scalars()]
    where = S.c.customer_group_id == swept
    if len(ids) < limit:
        conn.execute(delete(S).where(where))
    else:
        conn.execute(S.update().where(where).values(after_id=ids[-1]))
    return SweepBatch(swept, trigger, ids, len(ids) < limit)


def sweep_of(conn: Connection, group_id: str) -> tuple[str, str] | None:
    """``(after_id, trigger)`` of the group's sweep, None when it has none."""
    query = select(S.c.after_id, S.c.trigger).where(S.c.customer_group_id == group_id)
    row = conn.execute(query).first()
    return None if row is None else (str(row[0]), str(row[1]))


def count_live_customers(conn: Connection, up_to: str | None = None) -> int:
    """Live customers (those with an id up to ``up_to``, when given)."""
    query = select(func.count()).select_from(C).where(C.c.deleted_at.is_(None))
    if up_to is not None:
        query = query.where(C.c.id <= up_to)
    return int(conn.execute(query).scalar_one())


_CLAIM_PG = sql_text(
    "SELECT f.customer_group_id, f.customer_id FROM smart_group_flip f"
    " JOIN customer c ON c.id = f.customer_id"
    " WHERE f.flip_at <= :now ORDER BY f.flip_at LIMIT :limit"
    " FOR UPDATE OF f SKIP LOCKED FOR NO KEY UPDATE OF c SKIP LOCKED"
).bindparams(bindparam("now", type_=tables.UTCDateTime()))


def claim_due_flips(conn: Connection, now: datetime, limit: int) -> list[tuple[str, str]]:
    """Up to ``limit`` flips due at ``now``, earliest first, deleted (the caller decides
    them again and writes the following ones). On PostgreSQL each is claimed with its
    customer's row, skipping those another transaction holds: a flip is applied by one
    transaction, and a claim dies with its transaction (a killed worker's rolls back)."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_CLAIM_PG, {"now": now, "limit": limit}).all()
    else:
        query = select(F.c.customer_group_id, F.c.customer_id).where(F.c.flip_at <= now)
        rows = conn.execute(query.order_by(F.c.flip_at).limit(limit)).all()
    claimed = [(str(gid), str(cid)) for gid, cid in rows]
    for gid, cid in claimed:
        conn.execute(delete(F).where(F.c.customer_group_id == gid, F.c.customer_id == cid))
    return claimed


def earliest_flip(conn: Connection) -> datetime | None:
    """The earliest flip (or sweep) of all."""
    moments = [
        conn.execute(select(func.min(F.c.flip_at))).scalar(),
        conn.execute(select(func.min(S.c.due_at))).scalar(),
    ]
    found = [
        tables.UTCDateTime().process_result_value(value, conn.dialect)
        for value in moments
        if value is not None
    ]
    return min((moment for moment in found if moment is not None), default=None)


def flips_of(conn: Connection, group_id: str, limit: int | None = None) -> dict[str, datetime]:
    """The next flips of a group's customers (customer -> when), earliest first."""
    query = (
        select(F.c.customer_id, F.c.flip_at)
        .where(F.c.customer_group_id == group_id)
        .order_by(F.c.flip_at, F.c.customer_id)
        .limit(limit)
    )
    return {str(cid): at for cid, at in conn.execute(query)}


def postpone_earliest_due(conn: Connection, now: datetime, until: datetime) -> str | None:
    """Move the earliest flip (or sweep) due at ``now`` to ``until``; what it was, or None.
    (A flip whose application keeps failing must not hold up those after it.)"""
    query = select(F.c.customer_group_id, F.c.customer_id).where(F.c.flip_at <= now)
    query = query.order_by(F.c.flip_at).limit(1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = conn.execute(query).first()
    if row is not None:
        where = and_(F.c.customer_group_id == row[0], F.c.customer_id == row[1])
        conn.execute(F.update().where(where).values(flip_at=until))
        return f"flip of customer {row[1]} in group {row[0]}"
    sweeps = select(S.c.customer_group_id).where(S.c.due_at <= now).order_by(S.c.due_at)
    if conn.dialect.name == "postgresql":
        sweeps = sweeps.with_for_update(skip_locked=True)
    group_id = conn.execute(sweeps.limit(1)).scalar()
    if group_id is None:
        return None
    conn.execute(S.update().where(S.c.customer_group_id == group_id).values(due_at=until))
    return f"sweep of group {group_id}"
