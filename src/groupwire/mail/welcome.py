"""Welcome emails: a template per customer group, mailed to each customer who joins it.

``gw.mail`` (:class:`WelcomeEmails`) is the one place where templates change: it checks the
templates (sandboxed Jinja2, strict variables) and the sender before anything is saved.
The ``groupwire.mail.welcome`` subscriber renders and sends on ``customer_group.customer_added``,
outside the request that added the customer, so a slow mail server never slows the API; a
failed send raises, so the relay retries it (and dead-letters it in the end). Each membership
(each ``customer_added`` event) gets at most one mail, see :mod:`groupwire.mail.once`.
A customer without email (Medusa allows them) gets none: the join is skipped with a log line,
never retried nor dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from groupwire.domain import events as ev
from groupwire.domain.errors import InvalidData, NotFound
from groupwire.domain.models import Event
from groupwire.events.idempotency import Idempotency
from groupwire.mail.once import once
from groupwire.mail.smtp import (
    SmtpSender,
    build_message,
    check_sender,
    message_id_for,
)
from groupwire.mail.tables import welcome_email as W
from groupwire.mail.templates import (
    SAMPLE,
    MailTemplate,
    RenderedMail,
    check_template,
    customer_variables,
    group_variables,
)
from groupwire.store import repository as repo
from groupwire.store.engine import reading
from groupwire.webhooks.store import lock_event_log_position, writing

log = logging.getLogger(__name__)

SUBSCRIBER = "groupwire.mail.welcome"
KIND = "Welcome email"


@dataclass(frozen=True)
class WelcomeEmail:
    """A group's welcome email: Jinja2 templates over ``customer`` and ``group``."""

    group_id: str
    subject: str
    body: str
    html_body: str | None
    sender: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @property
    def template(self) -> MailTemplate:
        return MailTemplate(self.subject, self.body, self.html_body)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _to_welcome(row: RowMapping) -> WelcomeEmail:
    return WelcomeEmail(
        group_id=row["group_id"],
        subject=row["subject"],
        body=row["body"],
        html_body=row["html_body"],
        sender=row["sender"],
        enabled=bool(row["enabled"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class WelcomeEmails:
    """``gw.mail``: per-group welcome templates and the subscriber that sends them."""

    def __init__(
        self,
        engine: Engine,
        idempotency: Idempotency,
        smtp: SmtpSender,
        *,
        default_sender: str | None = None,
    ) -> None:
        self.engine = engine
        self.idempotency = idempotency
        self.smtp = smtp
        self.default_sender = default_sender

    # --- templates ---------------------------------------------------------------------

    def get(self, group_id: str) -> WelcomeEmail:
        with self.engine.connect() as conn:
            found = _row(conn, group_id)
        if found is None:
            raise NotFound(KIND, group_id)
        return found

    def list(self) -> list[WelcomeEmail]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(W).order_by(W.c.group_id)).mappings().all()
        return [_to_welcome(row) for row in rows]

    def set(
        self,
        group_id: str,
        *,
        subject: str,
        body: str,
        html_body: str | None = None,
        sender: str | None = None,
        enabled: bool = True,
    ) -> WelcomeEmail:
        """Create or replace a group's welcome email. Members who join from now on get it."""
        values: dict[str, Any] = {
            "subject": check_template("subject", subject),
            "body": check_template("body", body),
            "html_body": (
                None if html_body is None else check_template("html_body", html_body, html=True)
            ),
            "sender": None if sender is None else check_sender(sender),
            "enabled": _flag(enabled),
        }
        if values["sender"] is None and self.default_sender is None:
            raise InvalidData(
                "sender is required (no default sender is configured: GROUPWIRE_MAIL_SENDER)"
            )
        now = datetime.now(UTC)
        with writing(self.engine) as conn:
            if repo.get_group(conn, group_id) is None:
                raise NotFound("customer_group", group_id)
            if _row(conn, group_id) is None:
                position = lock_event_log_position(conn)
                conn.execute(
                    insert(W).values(
                        group_id=group_id,
                        **values,
                        start_sequence=position,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                conn.execute(
                    update(W).where(W.c.group_id == group_id).values(**values, updated_at=now)
                )
            found = _row(conn, group_id)
        assert found is not None
        return found

    def delete(self, group_id: str) -> WelcomeEmail:
        """Stop welcoming new members of the group; mails already due are not sent."""
        with writing(self.engine) as conn:
            found = _row(conn, group_id)
            if found is None:
                raise NotFound(KIND, group_id)
            conn.execute(delete(W).where(W.c.group_id == group_id))
        return found

    def preview(self, group_id: str, customer_id: str | None = None) -> RenderedMail:
        """The group's welcome email rendered for a customer (or the sample customer)."""
        welcome = self.get(group_id)
        with self.engine.connect() as conn:
            group = repo.get_group(conn, group_id)
            customer = repo.get_customer(conn, customer_id) if customer_id else None
        if group is None:
            raise NotFound("customer_group", group_id)
        if customer_id and customer is None:
            raise NotFound("customer", customer_id)
        variables = {
            "group": group_variables(group),
            "customer": customer_variables(customer) if customer else SAMPLE["customer"],
        }
        return welcome.template.render(variables)

    # --- sending -----------------------------------------------------------------------

    def handle_events(self, events: Sequence[Event]) -> None:
        """The ``groupwire.mail.welcome`` subscriber, a batch of events at a time: one read
        finds which of the batch's groups welcome new members, and only their joins go on
        to :meth:`handle_event`. A group without a welcome email costs no query per join."""
        added = [event for event in events if event.type == ev.CUSTOMER_ADDED]
        if not added:
            return
        groups = sorted({event.data["group_id"] for event in added})
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(W.c.group_id, W.c.start_sequence).where(
                    W.c.group_id.in_(groups), W.c.enabled.is_(True)
                )
            )
            starts: dict[str, int] = {group_id: start for group_id, start in rows}
        for event in added:
            start = starts.get(event.data["group_id"])
            if start is not None and event.sequence > start:
                self.handle_event(event)  # mailed at most once, even when the batch is retried

    def handle_event(self, event: Event) -> None:
        """The ``groupwire.mail.welcome`` subscriber (``customer_group.customer_added``)."""
        if event.type != ev.CUSTOMER_ADDED:
            return
        group_id = event.data["group_id"]
        with self.engine.connect() as conn:
            row = conn.execute(select(W).where(W.c.group_id == group_id)).mappings().first()
            if row is None or not row["enabled"] or event.sequence <= row["start_sequence"]:
                return
            group = repo.get_group(conn, group_id)
            customer = repo.get_customer(conn, event.data["customer_id"])
        if group is None or customer is None:  # deleted since: nobody left to welcome
            return
        recipient = customer.email
        if recipient is None:
            log.info(
                "no welcome email for customer %s joining group %s (event %s): "
                "the customer has no email address",
                customer.id,
                group_id,
                event.id,
            )
            return
        welcome = _to_welcome(row)
        sender = welcome.sender or self.default_sender
        if sender is None:
            raise RuntimeError("no sender: set one on the template or GROUPWIRE_MAIL_SENDER")
        mail = welcome.template.render(
            {"customer": customer_variables(customer), "group": group_variables(group)}
        )
        message = build_message(
            mail,
            sender=sender,
            recipients=[recipient],
            message_id=message_id_for(event.id, "welcome", sender),
            headers={"Auto-Submitted": "auto-generated", "X-Groupwire-Event": event.id},
        )
        with once(self.idempotency, SUBSCRIBER, event.id) as first:
            if first:
                self.smtp.send(message)

    def sent(self, event_id: str) -> bool:
        """Whether the welcome email for this ``customer_added`` event went out."""
        return self.idempotency.seen(SUBSCRIBER, event_id)


def _row(conn: Connection, group_id: str) -> WelcomeEmail | None:
    row = conn.execute(select(W).where(W.c.group_id == group_id)).mappings().first()
    return _to_welcome(row) if row else None


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidData("enabled must be true or false")
    return value


__all__ = ["SUBSCRIBER", "WelcomeEmail", "WelcomeEmails"]
