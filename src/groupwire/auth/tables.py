"""The ``api_key`` table: one row per key, holding the SHA-256 of its secret, never the secret."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, String, Table

from groupwire.store.tables import UTCDateTime, metadata

api_key = Table(
    "api_key",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    Index("uq_api_key_secret_hash", "secret_hash", unique=True),
)
