"""Stakeholder notification rules: "when a customer joins (or leaves) group X, tell Y".

A rule mails ``emails`` and/or notifies a webhook endpoint it owns (``webhook_endpoint_id``,
created by the rule with a filter on the group, so signing, retries and the SSRF guard are the
webhooks package's). ``start_sequence``: only events committed after the rule was created.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table, Text, text

from groupwire.store.tables import Id, Json, UTCDateTime, metadata

notification_rule = Table(
    "notification_rule",
    metadata,
    Column("id", Id, primary_key=True),
    Column("group_id", Id, nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("emails", Json, nullable=False),
    Column("webhook_endpoint_id", Id, nullable=True),
    Column("subject", Text, nullable=True),
    Column("body", Text, nullable=True),
    Column("sender", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("start_sequence", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_notification_rule_group_id", "group_id"),
)
