"""Creating, listing, revoking and checking API keys: every write to ``api_key`` goes through here.

A secret looks like ``gw_sk_<43 url-safe characters>``: 32 bytes (256 bits) from :mod:`secrets`.
Only its SHA-256 is stored. A slow password hash (bcrypt, argon2) protects *low-entropy*
secrets chosen by people against offline guessing; a 256-bit random secret cannot be guessed
whatever the hash, so a fast hash loses nothing and lets every request find its key with one
indexed lookup instead of paying a deliberately slow hash per call. A leaked database therefore
yields no usable secret.

Scopes: ``read`` (GET), ``write`` (changes, and reading), ``admin`` (everything, including key
management). Key changes are not customer-group changes: they write no outbox event, they are
logged (logger ``groupwire.auth``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import DBAPIError

from groupwire.auth.tables import api_key as K
from groupwire.domain.errors import InvalidData, NotFound, Unavailable
from groupwire.domain.ids import new_id
from groupwire.store.engine import UNAVAILABLE_MESSAGE, WRITE, connection_lost, read_retrying

log = logging.getLogger("groupwire.auth")

PREFIX = "gw_sk_"
API_KEY = "apikey"
SCOPES = ("read", "write", "admin")
# ``last_used_at`` is refreshed at most this often, so that authenticating a request is a
# read, not a write on every call (a write would serialise every request on SQLite).
LAST_USED_RESOLUTION = timedelta(minutes=1)
_KIND = "API key"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def grants(key: ApiKey, scope: str) -> bool:
    """Whether ``key`` may do what ``scope`` names: admin grants all, write grants read."""
    held = set(key.scopes)
    if "admin" in held or scope in held:
        return True
    return scope == "read" and "write" in held


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(engine: Engine, name: str, scopes: Sequence[str]) -> tuple[ApiKey, str]:
    """Create a key; returns its record and its secret, which is never retrievable again."""
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise InvalidData("name must be a non-empty string of at most 255 characters")
    if isinstance(scopes, str) or not scopes:
        raise InvalidData(f"scopes must be a non-empty list of: {', '.join(SCOPES)}")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise InvalidData(f"Unknown scopes: {', '.join(map(str, unknown))}")
    ordered = tuple(s for s in SCOPES if s in scopes)
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id(API_KEY), name=name.strip(), scopes=ordered, created_at=datetime.now(UTC)
    )
    with _write(engine) as conn:
        conn.execute(
            insert(K).values(
                id=key.id,
                name=key.name,
                scopes=list(key.scopes),
                secret_hash=hash_secret(secret),
                created_at=key.created_at,
            )
        )
    log.info("created API key %s (%s) with scopes %s", key.id, key.name, ",".join(key.scopes))
    return key, secret


def list_keys(engine: Engine) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(K).order_by(K.c.created_at, K.c.id)).mappings().all()
    return [_to_key(row) for row in rows]


def get_key(engine: Engine, key_id: str) -> ApiKey:
    with engine.connect() as conn:
        row = conn.execute(select(K).where(K.c.id == key_id)).mappings().first()
    if row is None:
        raise NotFound(_KIND, key_id)
    return _to_key(row)


def revoke_key(engine: Engine, key_id: str) -> ApiKey:
    """Revoke a key at once (its next request gets 401). Revoking twice changes nothing."""
    now = datetime.now(UTC)
    with _write(engine) as conn:
        row = conn.execute(select(K).where(K.c.id == key_id)).mappings().first()
        if row is None:
            raise NotFound(_KIND, key_id)
        key = _to_key(row)
        if key.revoked_at is not None:  # perhaps by another process: this one forgets it too
            _forget(engine, key_id)
            return key
        conn.execute(update(K).where(K.c.id == key_id).values(revoked_at=now))
    _forget(engine, key_id)
    log.info("revoked API key %s (%s)", key.id, key.name)
    return ApiKey(key.id, key.name, key.scopes, key.created_at, now, key.last_used_at)


def authenticate(engine: Engine, secret: str) -> ApiKey | None:
    """The active key whose secret this is, or None (unknown, malformed or revoked)."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    digest = hash_secret(secret)
    row = read_retrying(
        engine,
        lambda conn: conn.execute(select(K).where(K.c.secret_hash == digest)).mappings().first(),
    )
    if row is None or row["revoked_at"] is not None:
        return None
    key = _to_key(row)
    now = datetime.now(UTC)
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        try:
            with _write(engine) as conn:
                conn.execute(update(K).where(K.c.id == key.id).values(last_used_at=now))
        except DBAPIError as error:  # the request itself has not started: nothing of it written
            if not connection_lost(error):
                raise
            raise Unavailable(UNAVAILABLE_MESSAGE) from error
        key = ApiKey(key.id, key.name, key.scopes, key.created_at, None, now)
    return key


class VerifiedKeys:
    """Keys whose secrets were verified in the last ``seconds``, by the secret's digest: a
    request presenting one again is authenticated without a database round trip.

    Only active keys are remembered (an unknown secret is looked up every time). Revoking a
    key through :func:`revoke_key` in this process forgets it at once, in every cache of the
    same engine; a revocation made by another process (a second server worker, the CLI) bites
    here within ``seconds``. A verification that started before a revocation is not
    remembered after it (the ``generation`` a caller read before looking the key up).
    ``seconds=0`` remembers nothing.
    """

    def __init__(self, engine: Engine, seconds: float, *, size: int = 1024) -> None:
        self.seconds = seconds
        self.size = size
        self.generation = 0
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[ApiKey, float]] = {}
        _caches.setdefault(engine, weakref.WeakSet()).add(self)

    def lookup(self, secret: str) -> ApiKey | None:
        """The key of ``secret`` if verified recently and its ``last_used_at`` needs no refresh."""
        if not self.seconds or not self._keys:
            return None
        found = self._keys.get(hash_secret(secret))
        if found is None:
            return None
        key, expires = found
        if time.monotonic() >= expires or (
            key.last_used_at is not None
            and datetime.now(UTC) - key.last_used_at >= LAST_USED_RESOLUTION
        ):
            return None
        return key

    def remember(self, secret: str, key: ApiKey, generation: int) -> None:
        """Remember ``key`` for ``secret``, unless a key was revoked since ``generation``."""
        if not self.seconds or not key.active:
            return
        with self._lock:
            if generation != self.generation:
                return
            if len(self._keys) >= self.size:
                self._keys.clear()
            self._keys[hash_secret(secret)] = (key, time.monotonic() + self.seconds)

    def forget(self, key_id: str) -> None:
        with self._lock:
            self.generation += 1
            for digest in [d for d, (key, _) in self._keys.items() if key.id == key_id]:
                del self._keys[digest]


_caches: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[VerifiedKeys]] = (
    weakref.WeakKeyDictionary()
)


def _forget(engine: Engine, key_id: str) -> None:
    for cache in list(_caches.get(engine, ())):
        cache.forget(key_id)


def _to_key(row: RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        scopes=tuple(row["scopes"] or ()),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


@contextmanager
def _write(engine: Engine) -> Iterator[Connection]:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed when the block succeeds."""
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        yield conn
