"""The relational schema, as SQLAlchemy Core tables shared by every backend.

Uniqueness "among non-deleted rows" is a partial unique index on both SQLite and PostgreSQL.
The ``event`` table is at once the transactional outbox and the audit log: rows are written in
the same transaction as the change they describe and never updated afterwards. A row holds one
event, or a run of ``span`` events of one bulk change (see ``event`` below).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")
RuleJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""JSON whose None is SQL's NULL (``rule IS NULL``: a manual group)."""
Id = String(64)

customer_group = Table(
    "customer_group",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=True),
    Column("metadata", Json, nullable=True),
    Column("created_by", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    Column("version", Integer, nullable=False, server_default=text("1")),
    # A smart group's rule (groupwire.domain.rules) and how many times it was set; a manual
    # group has none (rule_version counts on when a rule is set again after null).
    Column("rule", RuleJson, nullable=True),
    Column("rule_version", Integer, nullable=False, server_default=text("0")),
    Index(
        "uq_customer_group_name_live",
        "name",
        unique=True,
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
)

customer = Table(
    "customer",
    metadata,
    Column("id", Id, primary_key=True),
    Column("email", String(320), nullable=True),  # Medusa's customers need no email
    Column("first_name", String(255), nullable=True),
    Column("last_name", String(255), nullable=True),
    Column("company_name", String(255), nullable=True),
    Column("phone", String(64), nullable=True),
    Column("has_account", Boolean, nullable=False, server_default=text("false")),
    Column("metadata", Json, nullable=True),
    Column("created_by", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    Column("version", Integer, nullable=False, server_default=text("1")),
    # As in Medusa: a guest and an account may share an address; NULL emails never collide.
    Index(
        "uq_customer_email_has_account_live",
        "email",
        "has_account",
        unique=True,
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
)

membership = Table(
    "customer_group_customer",
    metadata,
    Column(
        "customer_group_id",
        Id,
        ForeignKey("customer_group.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("customer_id", Id, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True),
    Column("created_by", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_customer_group_customer_customer_id", "customer_id"),
)

# The scheduler of smart groups' time conditions: for each (smart group, customer) whose
# rule reads time, the next moment its answer may change by itself (domain.rules.next_flip),
# written in the transaction of each evaluation; a row due is claimed, decided again and
# replaced by the following one (service.smart_groups, trigger "schedule").
smart_group_flip = Table(
    "smart_group_flip",
    metadata,
    Column(
        "customer_group_id",
        Id,
        ForeignKey("customer_group.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("customer_id", Id, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True),
    Column("flip_at", UTCDateTime, nullable=False),
    Index("ix_smart_group_flip_flip_at", "flip_at"),
)

# A smart group whose rule reading time was just applied to everyone, or whose rule was
# saved with ``stream``: from ``due_at``, the scheduler decides its customers again in id
# order past ``after_id``, a batch a transaction (writing each one's next flip for a rule
# reading time); the row goes when every customer is done.
smart_group_sweep = Table(
    "smart_group_sweep",
    metadata,
    Column(
        "customer_group_id",
        Id,
        ForeignKey("customer_group.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("after_id", Id, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    # ``schedule``: a rule reading time applied to everyone, each one's next flip to write;
    # ``rule_changed``: a rule saved with ``stream``, applied here in committed chunks
    Column("trigger", String(32), nullable=False, server_default="schedule"),
)

event = Table(
    "event",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(64), nullable=False, unique=True),
    Column("type", String(128), nullable=False),
    Column("source", String(255), nullable=False),
    Column("subject", Id, nullable=False),
    Column("partition", Id, nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("data", Json, nullable=False),
    Column("actor", String(255), nullable=True),
    Column("correlation_id", String(255), nullable=True),
    # A bulk change (100,000 customers added at once) is one row of ``span`` events that share
    # their type, subject, time and context and differ in one payload key: ``spread`` is the
    # JSON object ``{key: [value per event]}``, and ``data`` the payload with that key null.
    # ``sequence`` is the run's last sequence, ``sequence - span + 1`` its first; ``id`` is the
    # first event's id, the others follow it (``groupwire.domain.ids.shifted_id``). The
    # repository expands such a row into its events: no reader sees the difference.
    Column("span", Integer, nullable=False, server_default=text("1")),
    Column("spread", Text, nullable=True),
    Index("ix_event_type_sequence", "type", "sequence"),
    Index("ix_event_subject_sequence", "subject", "sequence"),
    Index("ix_event_time", "time"),
)

# One row: the last sequence handed out. Taking its row lock at commit time is what makes the
# sequence follow commit order without gaps (see store.unit_of_work). ``routing_version``
# counts the changes to what decides where events go (webhook endpoints): bumped under the
# same lock, and read back by every event-writing commit (store.unit_of_work.change_routing).
outbox_counter = Table(
    "outbox_counter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("routing_version", BigInteger, nullable=False, server_default=text("0")),
    # Counts the changes to smart groups' rules: bumped under the same lock at the start of
    # a rule's change, read back by every event-writing commit that evaluated rules
    # (service.smart_groups): a commit that evaluated an older set of rules is retried.
    Column("rules_version", BigInteger, nullable=False, server_default=text("0")),
)

subscriber_checkpoint = Table(
    "subscriber_checkpoint",
    metadata,
    Column("subscriber", String(255), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

dead_letter = Table(
    "dead_letter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber", String(255), nullable=False),
    Column("event_sequence", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("replayed_at", UTCDateTime, nullable=True),
    Index("ix_dead_letter_subscriber", "subscriber", "replayed_at"),
)

processed_event = Table(
    "processed_event",
    metadata,
    Column("consumer", String(255), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", UTCDateTime, nullable=False),
)

# One row per idempotency key in use: written in the transaction of the change it guards (see
# store.idempotency_keys), its answer (``status``, ``headers``, ``body``) stored with it or
# right after it; null while the change is in flight or when no answer could be stored.
idempotency_key = Table(
    "idempotency_key",
    metadata,
    Column("scope", String(255), primary_key=True),  # the actor: an API key id, or ""
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=True),
    Column("headers", Text, nullable=True),
    Column("body", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_idempotency_key_expires_at", "expires_at"),
)
