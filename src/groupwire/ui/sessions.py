"""Sessions of the admin page: signing in with an API key, the session cookie, CSRF tokens.

Signing in checks the key with :func:`groupwire.auth.keys.authenticate` and stores a session
row; the browser gets a random token in an ``HttpOnly``, ``SameSite=Strict`` cookie. Every
request looks the session up again and re-checks its key, so revoking a key or signing out
ends the session at once. Each session has its own CSRF token, which every form of the page
posts back.

The same cookie lets the page's JavaScript *read* the JSON Admin API (the live event stream,
a group's stats): :func:`session_key` is what the API's authentication middleware asks when a
``GET`` carries no ``Authorization`` header. Changes never go through the cookie on ``/admin``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from groupwire.auth.keys import ApiKey, authenticate, get_key
from groupwire.domain.errors import NotFound
from groupwire.store.engine import WRITE
from groupwire.ui.tables import ui_session as S

COOKIE = "groupwire_session"
LIFETIME = timedelta(hours=12)
_TOKEN_PREFIX = "gw_ui_"


@dataclass(frozen=True, slots=True)
class Session:
    key: ApiKey
    csrf_token: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def sign_in(engine: Engine, secret: str) -> tuple[str, Session] | None:
    """Open a session for the key whose secret this is; None when the key is not valid.

    Returns the cookie's token (shown to nobody but the browser) and the session.
    """
    key = authenticate(engine, secret.strip())
    if key is None:
        return None
    token = _TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session = Session(key=key, csrf_token=secrets.token_urlsafe(32), expires_at=now + LIFETIME)
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        conn.execute(delete(S).where(S.c.expires_at <= now))  # forget stale sessions
        conn.execute(
            insert(S).values(
                id=_digest(token),
                key_id=key.id,
                csrf_token=session.csrf_token,
                created_at=now,
                expires_at=session.expires_at,
            )
        )
    return token, session


def find_session(engine: Engine, token: str | None) -> Session | None:
    """The live session of this cookie token: not expired, not signed out, key not revoked."""
    if not token or not token.startswith(_TOKEN_PREFIX) or len(token) > 200:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(S).where(S.c.id == _digest(token))).mappings().first()
    if row is None or row["expires_at"] <= datetime.now(UTC):
        return None
    try:
        key = get_key(engine, row["key_id"])
    except NotFound:
        return None
    if not key.active:
        return None
    return Session(key=key, csrf_token=row["csrf_token"], expires_at=row["expires_at"])


def sign_out(engine: Engine, token: str | None) -> None:
    """End the session of this token (nothing happens for an unknown one)."""
    if not token:
        return
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        conn.execute(delete(S).where(S.c.id == _digest(token)))


def csrf_matches(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf_token, str(given))


def session_key(engine: Engine, headers: Headers) -> ApiKey | None:
    """The key of the session cookie in these request headers, if any is live.

    Used by the Admin API's middleware for reads only (see the module docstring).
    """
    token = cookie_parser(headers.get("cookie", "")).get(COOKIE)
    session = find_session(engine, token)
    return None if session is None else session.key
