"""Idempotency keys: the record that makes a retried write change nothing the second time.

A key is claimed (its row inserted) inside the transaction of the change it guards, so the
row commits exactly when the change does: a retry that finds the row knows the change is
applied, one that finds none knows nothing was written. The answer given to the first
request (``status``, a few ``headers``, ``body``) is stored on that row, right after the
change when it is rendered after the commit (the Admin API), and replayed to every retry.

Keys are scoped (by the actor: an API key's id) and expire ``ttl`` seconds after their first
use; an expired key is ignored, then deleted by :func:`prune` or by the next claim of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from groupwire.domain.errors import AlreadyApplied, IdempotencyKeyReused
from groupwire.store.engine import WRITE
from groupwire.store.tables import idempotency_key as K

DEFAULT_TTL = 24 * 3600.0


def fingerprint(*parts: str | bytes) -> str:
    """A digest of what makes two requests "the same request" (length-prefixed parts)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def arguments_fingerprint(operation: str, arguments: Mapping[str, Any]) -> str:
    """The fingerprint of a library call: the operation and its arguments as JSON."""
    encoded = json.dumps(arguments, sort_keys=True, default=repr, separators=(",", ":"))
    return fingerprint(operation, encoded)


@dataclass(frozen=True, slots=True)
class Answer:
    """The response given to the first request with a key."""

    status: int
    headers: dict[str, str]
    body: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    fingerprint: str
    answer: Answer | None  # None: the change is in flight, or applied with no stored answer
    expires_at: datetime


def find(conn: Connection, scope: str, key: str, now: datetime) -> KeyRecord | None:
    """The live (unexpired) record of ``key`` in ``scope``, committed or this transaction's."""
    row = conn.execute(
        select(K.c.fingerprint, K.c.status, K.c.headers, K.c.body, K.c.expires_at).where(
            K.c.scope == scope, K.c.key == key
        )
    ).first()
    if row is None or row.expires_at <= now:
        return None
    answer = None
    if row.status is not None:
        answer = Answer(row.status, json.loads(row.headers or "{}"), row.body or "")
    return KeyRecord(row.fingerprint, answer, row.expires_at)


def claim(
    conn: Connection, scope: str, key: str, request_fingerprint: str, now: datetime, ttl: float
) -> None:
    """Insert the key's row in the caller's (the change's) transaction.

    Raises ``AlreadyApplied`` when a committed change used the key for the same request (or
    a concurrent one commits it first: the insert then waits for it and fails), and
    ``IdempotencyKeyReused`` when it was used for another request. An expired row is
    replaced.
    """
    row = _new_row(scope, key, request_fingerprint, now, ttl)
    # One statement when the key is new (the usual case): a key already there, committed or
    # being committed by a concurrent request (the insert waits for it), inserts nothing.
    inserted = conn.execute(_insert_new(conn.dialect.name).values(row)).first()
    if inserted is not None:
        return
    found = conn.execute(
        select(K.c.fingerprint, K.c.expires_at).where(K.c.scope == scope, K.c.key == key)
    ).first()
    if found is None:  # the concurrent request holding it rolled back: claim it now
        try:
            conn.execute(insert(K), row)
        except IntegrityError:
            raise AlreadyApplied(key) from None
        return
    if found.expires_at > now:
        if found.fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(key)
        raise AlreadyApplied(key)
    conn.execute(delete(K).where(K.c.scope == scope, K.c.key == key))
    conn.execute(insert(K), row)


def _insert_new(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` on the key's table, in the dialect's words."""
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(K)
    return statement.on_conflict_do_nothing(index_elements=["scope", "key"]).returning(K.c.key)


def store_answer(
    engine: Engine,
    scope: str,
    key: str,
    request_fingerprint: str,
    answer: Answer,
    now: datetime,
    ttl: float,
) -> None:
    """Record ``answer`` on the key's row, in a transaction of its own; insert the row when
    the request changed nothing through the service (the routes that configure Groupwire
    itself, API keys or webhooks, write outside it)."""
    values = {
        "status": answer.status,
        "headers": json.dumps(answer.headers),
        "body": answer.body,
    }
    with suppress(IntegrityError):  # a concurrent request with the key recorded itself first
        _store(engine, scope, key, request_fingerprint, values, now, ttl)


def _store(
    engine: Engine,
    scope: str,
    key: str,
    request_fingerprint: str,
    values: dict[str, Any],
    now: datetime,
    ttl: float,
) -> None:
    with engine.connect().execution_options(**{WRITE: True}) as conn:
        # One round trip on PostgreSQL: the UPDATE is its own transaction (autocommit). The
        # answer only caches what the committed change did: should a crash lose it, the key
        # answers 409 "already applied".
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            updated = conn.execute(_answer_update(scope, key, request_fingerprint, values))
            if not updated.rowcount:  # each statement commits on its own
                _insert_answer(conn, scope, key, request_fingerprint, values, now, ttl)
            return
        with conn.begin():
            updated = conn.execute(_answer_update(scope, key, request_fingerprint, values))
            if not updated.rowcount:
                _insert_answer(conn, scope, key, request_fingerprint, values, now, ttl)


def _answer_update(scope: str, key: str, request_fingerprint: str, values: dict[str, Any]) -> Any:
    return (
        update(K)
        .where(
            K.c.scope == scope,
            K.c.key == key,
            K.c.fingerprint == request_fingerprint,
            K.c.status.is_(None),
        )
        .values(**values)
    )


def _insert_answer(
    conn: Connection,
    scope: str,
    key: str,
    request_fingerprint: str,
    values: dict[str, Any],
    now: datetime,
    ttl: float,
) -> None:
    """The key's row with its answer, for a request that changed nothing through the service
    (the routes that configure Groupwire itself, API keys or webhooks, write outside it)."""
    found = conn.execute(select(K.c.status).where(K.c.scope == scope, K.c.key == key))
    if found.first() is not None:
        return  # a concurrent request with the key recorded itself first
    conn.execute(insert(K), {**_new_row(scope, key, request_fingerprint, now, ttl), **values})


def _new_row(
    scope: str, key: str, request_fingerprint: str, now: datetime, ttl: float
) -> dict[str, Any]:
    return {
        "scope": scope,
        "key": key,
        "fingerprint": request_fingerprint,
        "created_at": now,
        "expires_at": now + timedelta(seconds=ttl),
    }


def lookup(engine: Engine, scope: str, key: str, now: datetime) -> KeyRecord | None:
    """:func:`find` on a connection of its own (committed rows only)."""
    with engine.connect() as conn:
        return find(conn, scope, key, now)


def prune(conn: Connection, now: datetime) -> int:
    """Delete the expired keys; returns how many."""
    return conn.execute(delete(K).where(K.c.expires_at <= now)).rowcount
