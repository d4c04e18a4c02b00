"""The ``ui_session`` table: one row per signed-in browser of the admin page.

The cookie holds a random token; only its SHA-256 is stored (as for API keys), so a leaked
database yields no usable session. A session belongs to an API key and dies with it.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table

from groupwire.store.tables import UTCDateTime, metadata

ui_session = Table(
    "ui_session",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the cookie's token
    Column("key_id", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_ui_session_expires_at", "expires_at"),
)
