"""``gw.webhooks``: managing endpoints and their delivery log, and running the dispatcher.

Endpoint changes validate everything first (URL safety included) and write in one
transaction. The secret is generated here, returned once by :meth:`Webhooks.create` and
:meth:`Webhooks.rotate_secret`, and never listed. The delivery log is kept for the retention
period (:meth:`Webhooks.prune`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from groupwire.domain.errors import InvalidData, NotFound
from groupwire.domain.ids import new_id
from groupwire.domain.models import Event, Page
from groupwire.store import repository as repo
from groupwire.webhooks import fanout, queue
from groupwire.webhooks import store as db
from groupwire.webhooks.clock import Clock, SystemClock
from groupwire.webhooks.dispatcher import DeliveryConfig, Dispatcher
from groupwire.webhooks.models import MESSAGE_STATUSES, WebhookEndpoint, WebhookMessage
from groupwire.webhooks.schedule import RetrySchedule
from groupwire.webhooks.signing import generate_secret
from groupwire.webhooks.ssrf import resolve_target

ENDPOINT = "wh"
UNSET: Any = object()
EVENT_TYPE_PATTERN = re.compile(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$")
MAX_DESCRIPTION = 1000
MAX_FILTERS = 100
MAX_PAGE = 1000
# The fields of an endpoint that decide which events it gets (what the fan-out matches on).
ROUTING_FIELDS = {"event_types", "group_ids", "enabled"}


class Webhooks:
    """Webhook endpoints of one Groupwire instance, their messages and the dispatcher."""

    def __init__(
        self,
        engine: Engine,
        config: DeliveryConfig,
        *,
        clock: Clock | None = None,
        secret_grace: timedelta = timedelta(hours=24),
        dispatch: bool = True,
        on_events: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.secret_grace = secret_grace
        self.dispatch = dispatch
        self.dispatcher = Dispatcher(engine, config, clock or SystemClock(), on_events=on_events)
        self.endpoint_cache = fanout.EndpointCache()

    @classmethod
    def for_groupwire(cls, gw: Any) -> Webhooks:
        """Built from a Groupwire instance's ``webhooks_*`` settings."""
        s = gw.settings
        allow_http = s.webhooks_allow_http
        config = DeliveryConfig(
            timeout=s.webhooks_timeout,
            schedule=RetrySchedule.of(s.webhooks_retry_schedule),
            disable_after=timedelta(seconds=s.webhooks_disable_after),
            endpoint_concurrency=s.webhooks_endpoint_concurrency,
            max_in_flight=s.webhooks_max_in_flight,
            poll_interval=s.webhooks_poll_interval,
            allow_private=s.webhooks_allow_private,
            allow_http=s.webhooks_allow_private if allow_http is None else allow_http,
            response_excerpt=s.webhooks_response_excerpt,
            response_max_bytes=s.webhooks_response_max_bytes,
            source=s.event_source,
            retention=timedelta(days=s.webhooks_retention_days),
            prune_interval=s.webhooks_prune_interval,
        )

        def committed(events: list[Event]) -> None:
            for listener in list(gw.service.commit_listeners):
                listener(events)

        return cls(
            gw.engine,
            config,
            secret_grace=timedelta(seconds=s.webhooks_secret_grace),
            dispatch=s.webhooks_dispatch,
            on_events=committed,
        )

    # --- the clock (tests replace it) --------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self.dispatcher.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.dispatcher.clock = clock

    # --- endpoints ---------------------------------------------------------------------

    def create(
        self,
        url: str,
        *,
        event_types: Sequence[str] = ("*",),
        group_ids: Sequence[str] | None = None,
        description: str | None = None,
        enabled: bool = True,
        ordered: bool = False,
    ) -> WebhookEndpoint:
        """Register an endpoint; the answer carries its secret, the only time it is shown.

        The endpoint receives the matching events committed after it was created.
        """
        values: dict[str, Any] = {
            "url": self._checked_url(url),
            "event_types": _event_types(event_types),
            "group_ids": _group_ids(group_ids),
            "description": _description(description),
            "enabled": _flag("enabled", enabled),
            "ordered": _flag("ordered", ordered),
        }
        secret = generate_secret()
        now = self.clock.now()
        endpoint_id = new_id(ENDPOINT)
        with db.writing(self.engine) as conn:
            _check_groups(conn, values["group_ids"])
            db.insert_endpoint(
                conn,
                {
                    "id": endpoint_id,
                    **values,
                    "secret": secret,
                    "start_sequence": db.lock_event_log_position(conn),
                    "created_at": now,
                    "updated_at": now,
                },
            )
            row = db.endpoint_row(conn, endpoint_id)
        assert row is not None
        return db.to_endpoint(row, secret=secret)

    def get(self, endpoint_id: str) -> WebhookEndpoint:
        with self.engine.connect() as conn:
            return db.to_endpoint(self._endpoint_row(conn, endpoint_id))

    def list(self, *, limit: int = 50, offset: int = 0, enabled: bool | None = None) -> Page:
        limit, offset = _paging(limit, offset)
        with self.engine.connect() as conn:
            items, count = db.list_endpoints(conn, limit=limit, offset=offset, enabled=enabled)
        return Page(items=items, count=count, offset=offset, limit=limit)

    def update(
        self,
        endpoint_id: str,
        *,
        url: str = UNSET,
        event_types: Sequence[str] = UNSET,
        group_ids: Sequence[str] | None = UNSET,
        description: str | None = UNSET,
        enabled: bool = UNSET,
        ordered: bool = UNSET,
    ) -> WebhookEndpoint:
        """Change some fields. Enabling an endpoint forgets its failure streak; its pending
        messages are delivered again."""
        values: dict[str, Any] = {}
        if url is not UNSET:
            values["url"] = self._checked_url(url)
        if event_types is not UNSET:
            values["event_types"] = _event_types(event_types)
        if group_ids is not UNSET:
            values["group_ids"] = _group_ids(group_ids)
        if description is not UNSET:
            values["description"] = _description(description)
        if ordered is not UNSET:
            values["ordered"] = _flag("ordered", ordered)
        if enabled is not UNSET:
            values["enabled"] = _flag("enabled", enabled)
        with db.writing(self.engine) as conn:
            row = self._endpoint_row(conn, endpoint_id)
            if values.get("group_ids"):
                _check_groups(conn, values["group_ids"])
            if values.get("enabled") is True and not row["enabled"]:
                values.update(failing_since=None, disabled_reason=None)
            if values:
                values["updated_at"] = self.clock.now()
                db.update_endpoint(conn, endpoint_id, values)
                if ROUTING_FIELDS & values.keys():
                    # after the row's lock, as the dispatcher takes them when it disables one
                    db.lock_event_log_position(conn)  # the fan-out's cache reads them again
            row = self._endpoint_row(conn, endpoint_id)
        if values.get("enabled"):
            self.dispatcher.wake()
        return db.to_endpoint(row)

    def delete(self, endpoint_id: str) -> WebhookEndpoint:
        """Delete an endpoint with its messages and delivery log."""
        with db.writing(self.engine) as conn:
            endpoint = db.to_endpoint(self._endpoint_row(conn, endpoint_id))
            db.delete_endpoint(conn, endpoint_id)
            db.lock_event_log_position(conn)  # the fan-out's cache reads the endpoints again
        return endpoint

    def rotate_secret(self, endpoint_id: str) -> WebhookEndpoint:
        """Give the endpoint a new secret (returned once). Deliveries are signed with the old
        one too for ``webhooks_secret_grace`` seconds, so receivers can switch over."""
        secret = generate_secret()
        now = self.clock.now()
        with db.writing(self.engine) as conn:
            row = self._endpoint_row(conn, endpoint_id)
            grace = self.secret_grace.total_seconds() > 0
            db.update_endpoint(
                conn,
                endpoint_id,
                {
                    "secret": secret,
                    "previous_secret": row["secret"] if grace else None,
                    "previous_secret_expires_at": now + self.secret_grace if grace else None,
                    "updated_at": now,
                },
            )
            row = self._endpoint_row(conn, endpoint_id)
        return db.to_endpoint(row, secret=secret)

    # --- the delivery log --------------------------------------------------------------

    def messages(
        self,
        endpoint_id: str,
        *,
        status: str | None = None,
        event_type: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """The endpoint's messages, newest first."""
        limit, offset = _paging(limit, offset)
        if status is not None and status not in MESSAGE_STATUSES:
            raise InvalidData(f"status must be one of {', '.join(MESSAGE_STATUSES)}")
        with self.engine.connect() as conn:
            self._endpoint_row(conn, endpoint_id)
            items, count = db.list_messages(
                conn, endpoint_id, limit=limit, offset=offset, status=status, event_type=event_type
            )
        return Page(items=items, count=count, offset=offset, limit=limit)

    def message(self, endpoint_id: str, message_id: str) -> WebhookMessage:
        with self.engine.connect() as conn:
            self._endpoint_row(conn, endpoint_id)
            row = db.message_row(conn, endpoint_id, message_id)
        if row is None:
            raise NotFound("Webhook message", message_id)
        return db.to_message(row)

    def attempts(
        self,
        endpoint_id: str,
        *,
        message_id: str | None = None,
        succeeded: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """Every attempt made for the endpoint (or one of its messages), newest first."""
        limit, offset = _paging(limit, offset)
        with self.engine.connect() as conn:
            self._endpoint_row(conn, endpoint_id)
            if message_id is not None and db.message_row(conn, endpoint_id, message_id) is None:
                raise NotFound("Webhook message", message_id)
            items, count = db.list_attempts(
                conn,
                endpoint_id,
                limit=limit,
                offset=offset,
                message_id=message_id,
                succeeded=succeeded,
            )
        return Page(items=items, count=count, offset=offset, limit=limit)

    def resend(self, endpoint_id: str, message_id: str) -> WebhookMessage:
        """Send a message again now, with a fresh retry schedule (same ``webhook-id``)."""
        now = self.clock.now()
        with db.writing(self.engine) as conn:
            self._endpoint_row(conn, endpoint_id)
            if db.message_row(conn, endpoint_id, message_id) is None:
                raise NotFound("Webhook message", message_id)
            db.reset_message(conn, message_id, now)
            row = db.message_row(conn, endpoint_id, message_id)
        if row is None:  # pruned between the check and the reset
            raise NotFound("Webhook message", message_id)
        self.dispatcher.wake()
        return db.to_message(row)

    def replay(self, endpoint_id: str, since: datetime) -> int:
        """Queue a new delivery of every matching event committed since ``since`` (each with
        a new ``webhook-id``); returns how many were queued."""
        if not isinstance(since, datetime):
            raise InvalidData("since must be a date and time")
        with self.engine.connect() as conn:
            row = self._endpoint_row(conn, endpoint_id)
        queued = fanout.replay(self.engine, row, since, now=self.clock.now())
        if queued:
            self.dispatcher.wake()
        return queued

    def prune(
        self,
        now: datetime | None = None,
        *,
        batch: int = queue.PRUNE_BATCH,
        older_than: timedelta | None = None,
    ) -> int:
        """Delete the finished messages whose last change is older than the retention period
        (``webhooks_retention_days``, or ``older_than``) at ``now`` (default: the clock's
        time), with their attempts; returns how many messages were deleted.

        Pending messages are kept however old, and so are failed messages of ordered
        endpoints: each holds back its group's later messages until it is resent (see
        :func:`groupwire.webhooks.queue.prune`). Deletes ``batch`` messages per transaction,
        so that SQLite's write lock is never held long. The background dispatcher does this
        every ``webhooks_prune_interval`` seconds.
        """
        if now is None:
            now = self.clock.now()
        elif not isinstance(now, datetime) or now.tzinfo is None:
            raise InvalidData("now must be a timezone-aware date and time")
        if isinstance(batch, bool) or not isinstance(batch, int):
            raise InvalidData("batch must be a whole number")
        if not 1 <= batch <= queue.MAX_PRUNE_BATCH:
            raise InvalidData(f"batch must be between 1 and {queue.MAX_PRUNE_BATCH}")
        if older_than is None:
            older_than = self.config.retention
        elif not isinstance(older_than, timedelta) or older_than <= timedelta(0):
            raise InvalidData("older_than must be a positive duration")
        try:
            before = now - older_than
        except OverflowError:
            raise InvalidData("older_than reaches back before the year 1") from None
        return queue.prune(self.engine, before=before, batch=batch)

    # --- delivery ----------------------------------------------------------------------

    def handle_event(self, event: Event) -> None:
        """Queue one event for its matching endpoints (see :meth:`handle_events`)."""
        self.handle_events([event])

    def handle_events(self, events: Sequence[Event]) -> None:
        """The ``groupwire.webhooks`` subscriber (a batch one): queue the events for their
        matching endpoints in one transaction, then wake the dispatcher."""
        now = self.clock.now()
        if fanout.fan_out_many(self.engine, events, now=now, cache=self.endpoint_cache):
            self.dispatcher.wake()

    def deliver_due(self) -> int:
        """Send every due message now, in this thread; returns the attempts made."""
        return self.dispatcher.deliver_due()

    def start(self) -> None:
        """Start the background dispatcher (``gw.start()`` calls this)."""
        if self.dispatch:
            self.dispatcher.start()

    def stop(self) -> None:
        """Stop it; messages in flight are sent again by the next dispatcher."""
        self.dispatcher.stop()

    # --- helpers -----------------------------------------------------------------------

    def _checked_url(self, url: Any) -> str:
        if not isinstance(url, str):
            raise InvalidData("url must be a string")
        url = url.strip()
        resolve_target(
            url, allow_private=self.config.allow_private, allow_http=self.config.allow_http
        )
        return url

    def _endpoint_row(self, conn: Any, endpoint_id: str) -> Any:
        row = db.endpoint_row(conn, endpoint_id)
        if row is None:
            raise NotFound("Webhook", endpoint_id)
        return row


def _check_groups(conn: Any, group_ids: list[str] | None) -> None:
    if not group_ids:
        return
    missing = [g for g in group_ids if repo.get_group(conn, g) is None]
    if missing:
        raise NotFound("customer_group", missing)


def _event_types(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidData("event_types must be a list of event types or patterns")
    types: list[str] = []
    for item in value:
        if not isinstance(item, str) or not EVENT_TYPE_PATTERN.match(item):
            raise InvalidData(
                f"event type {item!r} is not an event type (customer_group.created) "
                "or pattern (customer_group.*, *)"
            )
        if item not in types:
            types.append(item)
    if not types:
        raise InvalidData("event_types must name at least one event type or pattern")
    if len(types) > MAX_FILTERS:
        raise InvalidData(f"event_types takes at most {MAX_FILTERS} entries")
    return types


def _group_ids(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidData("group_ids must be a list of customer group ids or null")
    ids: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise InvalidData("group_ids must hold customer group ids")
        if item not in ids:
            ids.append(item)
    if not ids:
        raise InvalidData("group_ids must name at least one group (or be null for all)")
    if len(ids) > MAX_FILTERS:
        raise InvalidData(f"group_ids takes at most {MAX_FILTERS} entries")
    return ids


def _description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidData("description must be a string")
    if len(value) > MAX_DESCRIPTION:
        raise InvalidData(f"description is longer than {MAX_DESCRIPTION} characters")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidData(f"{name} must be true or false")
    return value


def _paging(limit: Any, offset: Any) -> tuple[int, int]:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise InvalidData(f"limit must be between 1 and {MAX_PAGE}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidData("offset must be 0 or more")
    return limit, offset
