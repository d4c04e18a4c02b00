"""The welcome email of each customer group: one row per group, edited only by
:class:`groupwire.mail.welcome.WelcomeEmails`.

``start_sequence`` is the last event sequence when the template was first saved: only
members who join after that get the mail (configuring a template never mails past joiners).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Table, Text, text

from groupwire.store.tables import Id, UTCDateTime, metadata

welcome_email = Table(
    "welcome_email",
    metadata,
    Column("group_id", Id, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("html_body", Text, nullable=True),
    Column("sender", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("start_sequence", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
