"""Stakeholder notification rules: "when a customer joins group X, tell Y".

``gw.notifications`` (:class:`NotificationRules`) is the one place rules change. A rule
names a group, an event (``customer_group.customer_added``, the default, or
``customer_group.customer_removed``) and its targets:

* ``emails``: addresses mailed by the ``groupwire.notify`` subscriber (subject and body are
  Jinja2 templates over ``customer`` and ``group``, checked on save like welcome emails), at
  most once per rule and event (:mod:`groupwire.mail.once`);
* ``webhook_url``: the rule creates a webhook endpoint of its own, filtered on the group and
  the event type, so the webhooks package signs, retries and SSRF-checks the notification;
  its secret is shown once, in the answer to the create (or to a change of URL).

Only events committed after the rule was created notify anyone.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from groupwire.domain import events as ev
from groupwire.domain.errors import InvalidData, NotFound
from groupwire.domain.ids import new_id
from groupwire.domain.models import Customer, Event, Page
from groupwire.events.idempotency import Idempotency
from groupwire.mail.once import once
from groupwire.mail.smtp import (
    SmtpSender,
    build_message,
    check_addresses,
    check_sender,
    message_id_for,
)
from groupwire.mail.templates import MailTemplate, check_template, customer_variables
from groupwire.mail.templates import group_variables as group_vars
from groupwire.notify.tables import notification_rule as R
from groupwire.store import repository as repo
from groupwire.store import tables as core
from groupwire.store.engine import reading
from groupwire.webhooks.store import lock_event_log_position, writing

SUBSCRIBER = "groupwire.notify"
KIND = "Notification rule"
RULE = "nrule"
EVENT_TYPES = (ev.CUSTOMER_ADDED, ev.CUSTOMER_REMOVED)
UNSET: Any = object()
MAX_DESCRIPTION = 1000
MAX_PAGE = 1000

# The stakeholders are told about a customer without email too (Medusa allows them): the
# default templates name such a customer by id and say "(no email)" where the address would be.
DEFAULT_SUBJECT = {
    ev.CUSTOMER_ADDED: "{{ customer.email or customer.id }} joined {{ group.name }}",
    ev.CUSTOMER_REMOVED: "{{ customer.email or customer.id }} left {{ group.name }}",
}
DEFAULT_BODY = {
    ev.CUSTOMER_ADDED: (
        "{{ customer.first_name }} {{ customer.last_name }} "
        "{% if customer.email %}<{{ customer.email }}>{% else %}(no email){% endif %}"
        "{% if customer.company_name %} ({{ customer.company_name }}){% endif %}"
        " joined the customer group {{ group.name }}.\n\n"
        "Customer: {{ customer.id }}\nGroup: {{ group.id }}\n"
    ),
    ev.CUSTOMER_REMOVED: (
        "{{ customer.first_name }} {{ customer.last_name }} "
        "{% if customer.email %}<{{ customer.email }}>{% else %}(no email){% endif %}"
        " left the customer group {{ group.name }}.\n\n"
        "Customer: {{ customer.id }}\nGroup: {{ group.id }}\n"
    ),
}


@dataclass(frozen=True)
class NotificationRule:
    id: str
    group_id: str
    event_type: str
    emails: list[str]
    webhook_endpoint_id: str | None
    webhook_url: str | None
    subject: str | None
    body: str | None
    sender: str | None
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    webhook_secret: str | None = None
    """Set only in the answer that created the rule's webhook endpoint."""

    @property
    def template(self) -> MailTemplate:
        return MailTemplate(
            self.subject or DEFAULT_SUBJECT[self.event_type],
            self.body or DEFAULT_BODY[self.event_type],
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["webhook_secret"] is None:
            del data["webhook_secret"]
        return data


class NotificationRules:
    """``gw.notifications``: the rules, and the subscriber that mails their stakeholders."""

    def __init__(
        self,
        gw: Any,
        smtp: SmtpSender,
        *,
        default_sender: str | None = None,
    ) -> None:
        self._gw = gw
        self.engine: Engine = gw.engine
        self.idempotency: Idempotency = gw.idempotency
        self.smtp = smtp
        self.default_sender = default_sender

    # --- rules -------------------------------------------------------------------------

    def create(
        self,
        group_id: str,
        *,
        emails: Sequence[str] = (),
        webhook_url: str | None = None,
        event_type: str = ev.CUSTOMER_ADDED,
        subject: str | None = None,
        body: str | None = None,
        sender: str | None = None,
        description: str | None = None,
        enabled: bool = True,
    ) -> NotificationRule:
        """Create a rule; with a ``webhook_url``, the answer carries the endpoint's secret."""
        if event_type not in EVENT_TYPES:
            raise InvalidData(f"event_type must be one of {', '.join(EVENT_TYPES)}")
        values = {
            "group_id": group_id,
            "event_type": event_type,
            "emails": check_addresses(list(emails) if isinstance(emails, tuple) else emails),
            **_mail_fields(subject, body, sender),
            "description": _description(description),
            "enabled": _flag(enabled),
        }
        if webhook_url is not None:
            _check_url(webhook_url)
        self._check_targets(values["emails"], webhook_url, values["sender"])
        with self.engine.connect() as conn:
            if repo.get_group(conn, group_id) is None:
                raise NotFound("customer_group", group_id)
        rule_id = new_id(RULE)
        endpoint = None
        if webhook_url is not None:
            endpoint = self._webhooks().create(
                webhook_url,
                event_types=[event_type],
                group_ids=[group_id],
                description=f"Notification rule {rule_id}",
                enabled=values["enabled"],
            )
        now = datetime.now(UTC)
        try:
            with writing(self.engine) as conn:
                if repo.get_group(conn, group_id) is None:
                    raise NotFound("customer_group", group_id)
                conn.execute(
                    insert(R).values(
                        id=rule_id,
                        **values,
                        webhook_endpoint_id=endpoint.id if endpoint else None,
                        start_sequence=lock_event_log_position(conn),
                        created_at=now,
                        updated_at=now,
                    )
                )
        except BaseException:
            if endpoint is not None:  # leave nothing half-made
                self._webhooks().delete(endpoint.id)
            raise
        rule = self.get(rule_id)
        return replace(rule, webhook_secret=endpoint.secret if endpoint else None)

    def get(self, rule_id: str) -> NotificationRule:
        with self.engine.connect() as conn:
            row = _row(conn, rule_id)
        if row is None:
            raise NotFound(KIND, rule_id)
        return self._to_rule(row)

    def list(self, *, group_id: str | None = None, limit: int = 50, offset: int = 0) -> Page:
        if not (isinstance(limit, int) and 0 <= limit <= MAX_PAGE):
            raise InvalidData(f"limit must be between 0 and {MAX_PAGE}")
        if not (isinstance(offset, int) and offset >= 0):
            raise InvalidData("offset must be 0 or more")
        query = select(R)
        if group_id is not None:
            query = query.where(R.c.group_id == group_id)
        with self.engine.connect() as conn:
            rows = (
                conn.execute(query.order_by(R.c.created_at, R.c.id).limit(limit).offset(offset))
                .mappings()
                .all()
            )
            count = len(conn.execute(query.with_only_columns(R.c.id)).all())
        return Page(
            items=[self._to_rule(row) for row in rows], count=count, offset=offset, limit=limit
        )

    def update(
        self,
        rule_id: str,
        *,
        emails: Sequence[str] = UNSET,
        webhook_url: str | None = UNSET,
        subject: str | None = UNSET,
        body: str | None = UNSET,
        sender: str | None = UNSET,
        description: str | None = UNSET,
        enabled: bool = UNSET,
    ) -> NotificationRule:
        """Change a rule. ``webhook_url=None`` removes its endpoint; a new URL on a rule that had
        none creates one (and the answer carries its secret)."""
        current = self.get(rule_id)
        values: dict[str, Any] = {}
        if emails is not UNSET:
            values["emails"] = check_addresses(emails)
        if subject is not UNSET:
            values["subject"] = None if subject is None else check_template("subject", subject)
        if body is not UNSET:
            values["body"] = None if body is None else check_template("body", body)
        if sender is not UNSET:
            values["sender"] = None if sender is None else check_sender(sender)
        if description is not UNSET:
            values["description"] = _description(description)
        if enabled is not UNSET:
            values["enabled"] = _flag(enabled)
        if webhook_url is not UNSET and webhook_url is not None:
            _check_url(webhook_url)
        url = current.webhook_url if webhook_url is UNSET else webhook_url
        self._check_targets(
            values.get("emails", current.emails), url, values.get("sender", current.sender)
        )
        secret = None
        webhooks = self._webhooks()
        endpoint_id = current.webhook_endpoint_id
        rule_enabled = values.get("enabled", current.enabled)
        if webhook_url is not UNSET:
            if webhook_url is None and endpoint_id is not None:
                values["webhook_endpoint_id"] = None
            elif webhook_url is not None and endpoint_id is None:
                created = webhooks.create(
                    webhook_url,
                    event_types=[current.event_type],
                    group_ids=[current.group_id],
                    description=f"Notification rule {rule_id}",
                    enabled=rule_enabled,
                )
                values["webhook_endpoint_id"] = created.id
                secret = created.secret
            elif webhook_url is not None and endpoint_id is not None:
                webhooks.update(endpoint_id, url=webhook_url)
        keeps_endpoint = values.get("webhook_endpoint_id", endpoint_id) is not None
        if endpoint_id is not None and keeps_endpoint and "enabled" in values:
            webhooks.update(endpoint_id, enabled=rule_enabled)
        if values:
            with writing(self.engine) as conn:
                if _row(conn, rule_id) is None:
                    raise NotFound(KIND, rule_id)
                conn.execute(
                    update(R)
                    .where(R.c.id == rule_id)
                    .values(**values, updated_at=datetime.now(UTC))
                )
        if values.get("webhook_endpoint_id", endpoint_id) is None and endpoint_id is not None:
            webhooks.delete(endpoint_id)
        return replace(self.get(rule_id), webhook_secret=secret)

    def delete(self, rule_id: str) -> NotificationRule:
        """Delete a rule and the webhook endpoint it made."""
        with writing(self.engine) as conn:
            row = _row(conn, rule_id)
            if row is None:
                raise NotFound(KIND, rule_id)
            conn.execute(delete(R).where(R.c.id == rule_id))
        rule = self._to_rule(row)
        if rule.webhook_endpoint_id is not None:
            with suppress(NotFound):  # already deleted through the webhooks API
                self._webhooks().delete(rule.webhook_endpoint_id)
        return rule

    # --- sending -----------------------------------------------------------------------

    def handle_events(self, events: Sequence[Event]) -> None:
        """The ``groupwire.notify`` subscriber, a batch of events at a time: one read finds
        the enabled rules of the batch's groups, and only the events a rule asks for go on to
        :meth:`handle_event`. Groups without rules cost no query per event."""
        wanted = [event for event in events if event.type in EVENT_TYPES]
        if not wanted:
            return
        groups = sorted({event.data["group_id"] for event in wanted})
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(R.c.group_id, R.c.event_type, R.c.start_sequence).where(
                    R.c.group_id.in_(groups), R.c.enabled.is_(True)
                )
            ).tuples()
            starts: dict[tuple[str, str], int] = {}
            for group_id, event_type, start in rows:
                key = (group_id, event_type)
                starts[key] = min(start, starts.get(key, start))
        for event in wanted:
            start = starts.get((event.data["group_id"], event.type))
            if start is not None and event.sequence > start:
                self.handle_event(event)  # each rule mailed at most once, even on a retry

    def handle_event(self, event: Event) -> None:
        """The ``groupwire.notify`` subscriber: mail each matching rule's addresses.

        Each rule is mailed at most once per event; if one rule's mail fails, the others are
        still sent, and the error is raised afterwards so that only the failed one is retried.
        """
        if event.type not in EVENT_TYPES:
            return
        group_id = event.data["group_id"]
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(R).where(
                        R.c.group_id == group_id,
                        R.c.event_type == event.type,
                        R.c.enabled.is_(True),
                        R.c.start_sequence < event.sequence,
                    )
                )
                .mappings()
                .all()
            )
            rules = [self._to_rule(row, with_url=False) for row in rows if row["emails"]]
            if not rules:
                return
            group = _any_group(conn, group_id)
            customer = _any_customer(conn, event.data["customer_id"])
        if group is None or customer is None:
            return
        variables = {"customer": customer_variables(customer), "group": group_vars(group)}
        errors: builtins.list[Exception] = []
        for rule in rules:
            sender = rule.sender or self.default_sender
            try:
                if sender is None:
                    raise RuntimeError(f"notification rule {rule.id} has no sender")
                message = build_message(
                    rule.template.render(variables),
                    sender=sender,
                    recipients=rule.emails,
                    message_id=message_id_for(event.id, rule.id, sender),
                    headers={"Auto-Submitted": "auto-generated", "X-Groupwire-Event": event.id},
                )
                with once(self.idempotency, f"{SUBSCRIBER}.{rule.id}", event.id) as first:
                    if first:
                        self.smtp.send(message)
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]

    # --- helpers -----------------------------------------------------------------------

    def _webhooks(self) -> Any:
        from groupwire.webhooks import webhooks_of

        return webhooks_of(self._gw)

    def _check_targets(self, emails: Sequence[str], webhook_url: str | None, sender: Any) -> None:
        if not emails and webhook_url is None:
            raise InvalidData("a rule needs emails, a webhook_url, or both")
        if emails and sender is None and self.default_sender is None:
            raise InvalidData(
                "sender is required to mail (no default sender is configured: "
                "GROUPWIRE_MAIL_SENDER)"
            )

    def _to_rule(self, row: RowMapping, *, with_url: bool = True) -> NotificationRule:
        url = None
        if with_url and row["webhook_endpoint_id"] is not None:
            try:
                url = self._webhooks().get(row["webhook_endpoint_id"]).url
            except NotFound:  # deleted through the webhooks API: the rule only mails now
                url = None
        return NotificationRule(
            id=row["id"],
            group_id=row["group_id"],
            event_type=row["event_type"],
            emails=list(row["emails"]),
            webhook_endpoint_id=row["webhook_endpoint_id"],
            webhook_url=url,
            subject=row["subject"],
            body=row["body"],
            sender=row["sender"],
            description=row["description"],
            enabled=bool(row["enabled"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def _mail_fields(subject: Any, body: Any, sender: Any) -> dict[str, Any]:
    return {
        "subject": None if subject is None else check_template("subject", subject),
        "body": None if body is None else check_template("body", body),
        "sender": None if sender is None else check_sender(sender),
    }


def _check_url(url: Any) -> None:
    if not isinstance(url, str) or not url.strip():
        raise InvalidData("webhook_url must be a URL")


def _description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise InvalidData(f"description must be text of at most {MAX_DESCRIPTION} characters")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidData("enabled must be true or false")
    return value


def _row(conn: Connection, rule_id: str) -> RowMapping | None:
    return conn.execute(select(R).where(R.c.id == rule_id)).mappings().first()


def _any_customer(conn: Connection, customer_id: str) -> Customer | None:
    """The customer, deleted or not (a ``customer_deleted`` leave still names them)."""
    row = conn.execute(select(core.customer).where(core.customer.c.id == customer_id))
    found = row.mappings().first()
    return repo.to_customer(found) if found else None


def _any_group(conn: Connection, group_id: str) -> Any:
    row = conn.execute(select(core.customer_group).where(core.customer_group.c.id == group_id))
    found = row.mappings().first()
    return repo.to_group(found) if found else None
