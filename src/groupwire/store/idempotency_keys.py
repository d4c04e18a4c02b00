"""Idempotency keys: the record that makes a retried write change nothing the second time.

A key is claimed (its row inserted) first thing in the transaction of the change it guards,
so the row commits exactly when the change does: a retry that finds the row knows the change
is applied, one that finds none knows nothing was written. The answer given to the first
request (``status``, a few ``headers``, ``body``) is written on that row in the same
transaction, just before the commit (:func:`record_answer`), and replayed to every retry: a
committed change always has its answer. A concurrent duplicate waits on the claimed row's
lock and, once the first commits, finds the answer with it.

Writes outside the service's unit of work (the Admin API routes that configure Groupwire
itself: API keys, webhooks, mail settings) record their key and answer after their own
transaction, in one statement (:func:`store_answer`).

Keys are scoped (by the actor: an API key's id) and expire ``ttl`` seconds after their first
use; an expired key is ignored, then deleted by :func:`prune` or by the next claim of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from groupwire.domain.changes import Answer
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
class KeyRecord:
    fingerprint: str
    answer: Answer | None  # None: the change is in flight, or applied with no stored answer
    expires_at: datetime


def find(conn: Connection, scope: str, key: str, now: datetime) -> KeyRecord | None:
    """The live (unexpired) record of ``key`` in ``scope``, committed or this transaction's."""
    row = conn.execute(_FIND, {"at_scope": scope, "at_key": key}).first()
    if row is None or row.expires_at <= now:
        return None
    return _record(row)


# Statements built once (each a constant, so SQLAlchemy compiles it once): a keyed write
# runs two of them, and building them per call cost more than running them.
_THIS_KEY = (K.c.scope == bindparam("at_scope")) & (K.c.key == bindparam("at_key"))
_FIND = select(K.c.fingerprint, K.c.status, K.c.headers, K.c.body, K.c.expires_at).where(_THIS_KEY)
_SET_ANSWER = update(K).where(_THIS_KEY)
_INSERT_NEW = text(
    f'INSERT INTO {K.name} (scope, "key", fingerprint, status, headers, body, created_at,'
    " expires_at) VALUES (:scope, :key, :fingerprint, :status, :headers, :body, :created_at,"
    ' :expires_at) ON CONFLICT (scope, "key") DO NOTHING RETURNING "key"'
).bindparams(
    bindparam("created_at", type_=K.c.created_at.type),
    bindparam("expires_at", type_=K.c.expires_at.type),
)
"""A new row, or nothing when the key is there (the same SQL on PostgreSQL and SQLite; as
text, because SQLAlchemy compiles its ``on_conflict_do_nothing`` anew on every call)."""


def _record(row: Row[Any]) -> KeyRecord:
    answer = None
    if row.status is not None:
        answer = Answer(row.status, json.loads(row.headers or "{}"), (row.body or "").encode())
    return KeyRecord(row.fingerprint, answer, row.expires_at)


def claim(
    conn: Connection, scope: str, key: str, request_fingerprint: str, now: datetime, ttl: float
) -> None:
    """Insert the key's row in the caller's (the change's) transaction.

    Raises ``AlreadyApplied``, carrying the answer stored with the key, when a committed
    change used the key for the same request (or a concurrent one commits it first: the
    insert then waits for it and fails), and ``IdempotencyKeyReused`` when it was used for
    another request. An expired row is replaced.
    """
    row = _new_row(scope, key, request_fingerprint, now, ttl)
    # One statement when the key is new (the usual case): a key already there, committed or
    # being committed by a concurrent request (the insert waits for it), inserts nothing.
    inserted = conn.execute(_INSERT_NEW, row).first()
    if inserted is not None:
        return
    found = conn.execute(_FIND, {"at_scope": scope, "at_key": key}).first()
    if found is None:  # the concurrent request holding it rolled back: claim it now
        try:
            conn.execute(insert(K), row)
        except IntegrityError:
            raise AlreadyApplied(key) from None
        return
    if found.expires_at > now:
        if found.fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(key)
        raise AlreadyApplied(key, _record(found).answer)
    conn.execute(delete(K).where(K.c.scope == scope, K.c.key == key))
    conn.execute(insert(K), row)


def record_answer(conn: Connection, scope: str, key: str, answer: Answer) -> None:
    """Write ``answer`` on the key's row, claimed earlier in the same transaction."""
    conn.execute(_SET_ANSWER, {"at_scope": scope, "at_key": key, **_answer_values(answer)})


def store_answer(
    engine: Engine,
    scope: str,
    key: str,
    request_fingerprint: str,
    answer: Answer,
    now: datetime,
    ttl: float,
) -> None:
    """Record the key with ``answer`` for a request that changed nothing through the
    service (the routes that configure Groupwire itself write outside it), in one statement
    of its own after that request's change; a concurrent request with the key that recorded
    itself first keeps its record."""
    row = {**_new_row(scope, key, request_fingerprint, now, ttl), **_answer_values(answer)}
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        conn.execute(_INSERT_NEW, row)


def _answer_values(answer: Answer) -> dict[str, Any]:
    return {
        "status": answer.status,
        "headers": json.dumps(dict(answer.headers)),
        "body": answer.body.decode("utf-8"),  # JSON: UTF-8, so the bytes replay unchanged
    }


def _new_row(
    scope: str, key: str, request_fingerprint: str, now: datetime, ttl: float
) -> dict[str, Any]:
    return {
        "scope": scope,
        "key": key,
        "fingerprint": request_fingerprint,
        "status": None,
        "headers": None,
        "body": None,
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
