"""What smart groups read and write: the rules, a customer's snapshot for the Python
evaluator, and the set-based differences (who joins, who leaves) for the SQL one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, func, not_, select

from groupwire.domain.models import CustomerGroup
from groupwire.domain.rules import Rule, Snapshot
from groupwire.store import address_repository, orders, tables
from groupwire.store import repository as repo
from groupwire.store.rules import rule_condition

C = tables.customer
G = tables.customer_group
M = tables.membership
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
