"""Webhook tables: endpoints, the messages queued for them, and every delivery attempt.

A message is one event for one endpoint. ``origin`` tells a live message (``live``, created
by the fan-out, unique per endpoint and event so a redelivered event creates nothing new)
from the copies a replay makes (``replay_<id>``). ``claimed_until`` is a lease: a dispatcher
sets it while a message is in flight, so that two dispatchers never send it at once.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from groupwire.store.tables import Id, Json, UTCDateTime, metadata

webhook_endpoint = Table(
    "webhook_endpoint",
    metadata,
    Column("id", Id, primary_key=True),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("event_types", Json, nullable=False),
    Column("group_ids", Json, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("ordered", Boolean, nullable=False, server_default=text("false")),
    Column("secret", String(255), nullable=False),
    Column("previous_secret", String(255), nullable=True),
    Column("previous_secret_expires_at", UTCDateTime, nullable=True),
    Column("start_sequence", BigInteger, nullable=False),
    Column("failing_since", UTCDateTime, nullable=True),
    Column("disabled_reason", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

webhook_message = Table(
    "webhook_message",
    metadata,
    Column("id", Id, primary_key=True),
    Column(
        "endpoint_id",
        Id,
        ForeignKey("webhook_endpoint.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", String(64), nullable=False),
    Column("event_sequence", BigInteger, nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("partition", Id, nullable=False),
    Column("origin", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("schedule_step", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("endpoint_id", "event_id", "origin"),
    Index("ix_webhook_message_status_next_attempt_at", "status", "next_attempt_at"),
    Index(
        "ix_webhook_message_endpoint_id_partition_event_sequence",
        "endpoint_id",
        "partition",
        "event_sequence",
    ),
    Index("ix_webhook_message_endpoint_id_created_at", "endpoint_id", "created_at"),
)

webhook_attempt = Table(
    "webhook_attempt",
    metadata,
    Column("id", Id, primary_key=True),
    Column(
        "message_id",
        Id,
        ForeignKey("webhook_message.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "endpoint_id",
        Id,
        ForeignKey("webhook_endpoint.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("response", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempted_at", UTCDateTime, nullable=False),
    Index("ix_webhook_attempt_endpoint_id_id", "endpoint_id", "id"),
    Index("ix_webhook_attempt_message_id", "message_id"),
)
