"""The reconciler of Medusa's smart groups: the rule's members made real through Medusa's API.

Level-triggered: each pass compares, per smart group (:mod:`groupwire.medusa.smart_groups`),
who should be a member (the rule over the copy's customers and captured orders) with who is
(the copy's memberships, which capture keeps equal to Medusa's), and asks Medusa for the
difference with its batch route ``POST /admin/customer-groups/{id}/customers
{"add": [...], "remove": [...]}`` (a secret API key, Basic auth), so Medusa's own workflow
runs and its price lists and promotions follow. Groupwire never writes Medusa's tables, and
the reconciler never writes the copy's memberships: capture brings Medusa's commit back, with
its ``customer_added`` / ``customer_removed`` events.

Never a double add (Medusa's add is not idempotent: a second add writes a second row):

- before a request, each pair it asks for is written as an *intent* (``medusa_rule_intent``:
  group, customer, action, rule version, trigger), committed; after Medusa's answer the
  intent gets Medusa's WAL position (``pg_current_wal_lsn()``, read after the answer, so at or
  after Medusa's commit);
- capture consumes the intent when it applies the membership row (:mod:`groupwire.medusa.mapping`:
  the event then carries ``reason: "rule"``, the ``rule_version`` and the ``trigger``);
- a pair with an intent is *in flight*: no pass asks for it again. An intent not consumed
  expires once capture has applied Medusa's WAL past its position (Medusa did not do it),
  or, when the answer never came (no position), after ``settle_seconds``; the pair is then
  decided again from the copy. Intents are rows, so a crash between the request and capture
  leaves them in flight for the next process as well.

A pass covers the customers the captured events name (``customer.*``, ``order.*``, membership
events), every customer of a group whose rule version changed, and everyone every
``full_pass_seconds`` (which also applies time conditions: a flip is at most that late here).
A membership change of a smart group that the reconciler did not ask for (made by hand in
Medusa's admin) is put back by the rule: logged, counted as ``reverted``.

One reconciler per store: on PostgreSQL it holds a session advisory lock of Groupwire's
database while it works; another one waits for it. Requests are rate-limited
(``max_requests_per_second``) and carry at most ``chunk`` ids.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.engine import Connection, Engine

from groupwire.domain import events as ev
from groupwire.domain.models import Event
from groupwire.domain.orders import ORDER_RECORDED
from groupwire.medusa import slot as slots
from groupwire.medusa import smart_groups
from groupwire.medusa.tables import medusa_reconciler, medusa_rule_intent, medusa_stream
from groupwire.store import repository as repo
from groupwire.store.engine import WRITE

log = logging.getLogger("groupwire.medusa.reconciler")

SUBSCRIBER = "groupwire.medusa.reconciler"
EVENTS = ("customer.*", "order.*", "customer_group.customer_*")
I = medusa_rule_intent  # noqa: E741
R = medusa_reconciler


@dataclass(frozen=True)
class ReconcilerOptions:
    api_url: str
    """Medusa's server (``http://localhost:9000``)."""
    api_key: str
    """A secret API key (``sk_...``): Basic auth with it as user name."""
    medusa_url: str | None = None
    """Medusa's PostgreSQL: its WAL position after each answer (see the module)."""
    slot: str | None = None
    """Capture's slot, whose applied position settles intents."""
    name: str = "default"
    full_pass_seconds: float = 60.0
    max_requests_per_second: float = 10.0
    chunk: int = 500
    settle_seconds: float = 30.0
    timeout: float = 30.0


@dataclass
class PassResult:
    added: int = 0
    removed: int = 0
    reverted: int = 0
    failed: int = 0
    in_flight: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)


class MedusaReconciler:
    """A background service of the instance (``gw.workers``) and a batch event handler."""

    def __init__(self, engine: Engine, options: ReconcilerOptions) -> None:
        self.engine = engine
        self.options = options
        self.client = httpx.Client(
            base_url=options.api_url.rstrip("/"),
            auth=(options.api_key, ""),
            timeout=options.timeout,
        )
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}  # customer -> trigger
        self._manual: set[tuple[str, str]] = set()  # pairs changed by hand, seen in events
        self._versions: dict[str, int] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_conn: Connection | None = None
        self._next_request = 0.0
        self._last_full = 0.0

    def _writing(self) -> Any:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``, queued behind capture's)."""
        return self.engine.execution_options(**{WRITE: True}).begin()

    # --- events: what changed --------------------------------------------------------------

    def handle_events(self, events: list[Event]) -> None:
        with self._lock:
            for event in events:
                found = _customer_and_trigger(event)
                if found is None:
                    continue
                customer, trigger = found
                if trigger == "membership_changed":
                    self._manual.add((str(event.data.get("group_id")), customer))
                self._pending[customer] = trigger
        self._wake.set()

    # --- the loop -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name="groupwire-medusa-reconciler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._release()
        self.client.close()

    def _run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            wait = 1.0
            try:
                if self._acquire():
                    full = time.monotonic() - self._last_full >= self.options.full_pass_seconds
                    result = self.reconcile(full=full)
                    wait = 0.2 if result.in_flight else self.options.full_pass_seconds
                failing = False
            except Exception as error:
                if not failing:
                    log.warning("reconciling Medusa's smart groups failed: %s", error)
                failing = True
                self._last_full = 0.0  # the customers it was given may be lost: everyone
                self._release()
            self._wake.wait(min(wait, self.options.full_pass_seconds))
            self._wake.clear()

    def _acquire(self) -> bool:
        """The store's reconciler lock (PostgreSQL; a single process on SQLite)."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self._lock_conn is not None:
            return True
        conn = self.engine.connect()
        key = zlib.crc32(f"{SUBSCRIBER}:{self.options.name}".encode())
        held = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        conn.commit()
        if not held:
            conn.close()
            return False
        self._lock_conn = conn
        self._last_full = 0.0  # a new holder starts with everyone
        return True

    def _release(self) -> None:
        if self._lock_conn is not None:
            try:
                self._lock_conn.close()  # the session lock goes with the session
            except Exception as error:  # pragma: no cover - closing a broken connection
                log.debug("closing the lock's connection failed: %s", error)
            self._lock_conn = None

    # --- one pass -------------------------------------------------------------------------

    def reconcile(self, *, full: bool = False) -> PassResult:
        """Compare and act once: everyone when ``full``, else the customers events named and
        every customer of a group whose rule changed."""
        now = datetime.now(UTC)
        with self._lock:
            pending, self._pending = self._pending, {}
            manual, self._manual = self._manual, set()
        if full:
            self._last_full = time.monotonic()
        result = PassResult()
        plans: list[tuple[str, int, dict[str, str], dict[str, str]]] = []
        with self._writing() as conn:
            self._expire(conn, now)
            flight = _in_flight(conn)
            result.in_flight = len(flight)
            for smart in smart_groups.list_rules(conn):
                group = repo.get_group(conn, smart.group_id)
                if group is None or group.deleted_at is not None:
                    continue
                changed = self._versions.get(smart.group_id) != smart.rule_version
                whole = full or changed
                if not whole and not pending:
                    continue
                among = None if whole else sorted(pending)
                rule = smart.parsed
                want = smart_groups.desired(conn, rule, now, among)
                have = smart_groups.actual(conn, smart.group_id, among)
                gid = smart.group_id
                base = "rule_changed" if changed and gid in self._versions else "reconcile"

                def trigger(customer: str, gid: str = gid, base: str = base) -> str:
                    if (gid, customer) in manual:
                        return "membership_changed"
                    return pending.get(customer, base)

                add = {c: trigger(c) for c in sorted(want - have) if (gid, c) not in flight}
                remove = {c: trigger(c) for c in sorted(have - want) if (gid, c) not in flight}
                reverted = sum(1 for c in (*add, *remove) if (gid, c) in manual)
                if reverted:
                    log.warning(
                        "group %s: %d membership change(s) made by hand put back by its rule",
                        gid,
                        reverted,
                    )
                    result.reverted += reverted
                if add or remove:
                    self._write_intents(conn, gid, smart.rule_version, add, remove, now)
                    plans.append((gid, smart.rule_version, add, remove))
                self._versions[gid] = smart.rule_version
        for gid, _version, add, remove in plans:
            result.in_flight += len(add) + len(remove)  # until capture brings them back
            self._post(gid, list(add), list(remove), result)
        self._count(result, now)
        return result

    def _expire(self, conn: Connection, now: datetime) -> None:
        settle = now - timedelta(seconds=self.options.settle_seconds)
        stale = now - timedelta(seconds=self.options.settle_seconds * 10)
        S = medusa_stream
        position = select(func.max(S.c.lsn))
        if self.options.slot is not None:
            position = position.where(S.c.slot == self.options.slot)
        applied = conn.execute(position).scalar()
        # Capture applies Medusa's commit and consumes its intents in one transaction: an
        # intent at or below the applied position was not done (0: Medusa refused it).
        settled = [I.c.lsn == 0, and_(I.c.at < settle, or_(I.c.lsn.is_(None), I.c.at < stale))]
        if applied is not None:
            settled.append(I.c.lsn <= applied)
        conn.execute(delete(I).where(or_(*settled)))

    def _write_intents(
        self,
        conn: Connection,
        group_id: str,
        version: int,
        add: dict[str, str],
        remove: dict[str, str],
        now: datetime,
    ) -> None:
        rows = [
            {
                "customer_group_id": group_id,
                "customer_id": customer,
                "action": action,
                "rule_version": version,
                "trigger": trigger,
                "at": now,
            }
            for action, pairs in (("add", add), ("remove", remove))
            for customer, trigger in pairs.items()
        ]
        for start in range(0, len(rows), 1000):
            conn.execute(I.insert(), rows[start : start + 1000])

    def _post(self, group_id: str, add: list[str], remove: list[str], result: PassResult) -> None:
        size = self.options.chunk
        work = [("add", add[i : i + size]) for i in range(0, len(add), size)]
        work += [("remove", remove[i : i + size]) for i in range(0, len(remove), size)]
        for action, ids in work:
            self._pace()
            result.requests += 1
            try:
                response = self.client.post(
                    f"/admin/customer-groups/{group_id}/customers", json={action: ids}
                )
            except httpx.HTTPError as error:
                # No answer: Medusa may or may not have done it; the intents settle by time.
                result.failed += len(ids)
                result.errors.append(f"{action} {len(ids)} in {group_id}: {error}")
                log.warning(
                    "asking Medusa to %s %d member(s) of %s: %s", action, len(ids), group_id, error
                )
                continue
            if response.status_code >= 300:
                # Refused (a customer unknown to Medusa: the whole batch): nothing was done.
                result.failed += len(ids)
                result.errors.append(f"{action} {len(ids)} in {group_id}: {response.text[:300]}")
                log.warning(
                    "Medusa refused to %s %d member(s) of %s: %s %s",
                    action,
                    len(ids),
                    group_id,
                    response.status_code,
                    response.text[:300],
                )
                self._settle(group_id, action, ids, 0)
                continue
            if action == "add":
                result.added += len(ids)
            else:
                result.removed += len(ids)
            self._settle(group_id, action, ids, self._medusa_position())

    def _settle(self, group_id: str, action: str, ids: list[str], lsn: int | None) -> None:
        """Give the intents of an answered request Medusa's WAL position (0: nothing done)."""
        if lsn is None:
            return
        with self._writing() as conn:
            for start in range(0, len(ids), 1000):
                conn.execute(
                    update(I)
                    .where(
                        I.c.customer_group_id == group_id,
                        I.c.action == action,
                        I.c.customer_id.in_(ids[start : start + 1000]),
                        I.c.lsn.is_(None),
                    )
                    .values(lsn=lsn)
                )

    def _medusa_position(self) -> int | None:
        if self.options.medusa_url is None:
            return None
        try:
            with slots.connect(self.options.medusa_url) as conn:
                row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        except Exception as error:
            log.debug("reading Medusa's WAL position failed: %s", error)
            return None
        return slots.lsn_to_int(row[0]) if row else None

    def _pace(self) -> None:
        gap = 1.0 / self.options.max_requests_per_second
        now = time.monotonic()
        if self._next_request > now:
            time.sleep(self._next_request - now)
        self._next_request = max(now, self._next_request) + gap

    def _count(self, result: PassResult, now: datetime) -> None:
        values = {
            "added": R.c.added + result.added,
            "removed": R.c.removed + result.removed,
            "reverted": R.c.reverted + result.reverted,
            "failed": R.c.failed + result.failed,
            "last_pass_at": now,
            "last_error": result.errors[-1][:1000] if result.errors else None,
        }
        with self._writing() as conn:
            done = conn.execute(
                update(R).where(R.c.name == self.options.name).values(**values)
            ).rowcount
            if not done:
                conn.execute(
                    R.insert().values(
                        name=self.options.name,
                        added=result.added,
                        removed=result.removed,
                        reverted=result.reverted,
                        failed=result.failed,
                        last_pass_at=now,
                        last_error=values["last_error"],
                    )
                )


def _in_flight(conn: Connection) -> set[tuple[str, str]]:
    rows = conn.execute(select(I.c.customer_group_id, I.c.customer_id))
    return {(str(g), str(c)) for g, c in rows}


def _customer_and_trigger(event: Event) -> tuple[str, str] | None:
    data = event.data
    kind = event.type
    if kind.startswith("customer_group."):
        customer = data.get("customer_id")
        if customer is None or data.get("reason") == ev.REASON_RULE:
            return None  # the reconciler's own change, seen back
        return str(customer), "membership_changed"
    if kind.startswith("order."):
        customer = data.get("customer_id") or (data.get("order") or {}).get("customer_id")
        if customer is None:
            return None
        status = data.get("status") or (data.get("changes") or {}).get("status", {})
        if isinstance(status, dict):
            status = status.get("new")
        if status == "canceled":
            return str(customer), "order_canceled"
        return str(customer), "order_placed" if kind == ORDER_RECORDED else "order_updated"
    if kind.startswith("customer."):
        customer = data.get("customer_id") or data.get("id")
        if customer is None:
            return None
        name = kind.removeprefix("customer.")  # address_created, ... or created, updated
        return str(customer), name if name.startswith("address_") else f"customer_{name}"
    return None


def reconcile_medusa(gw: Any, options: ReconcilerOptions) -> MedusaReconciler:
    """Subscribe a reconciler to ``gw``'s captured events and run it with ``gw``'s workers."""
    reconciler = MedusaReconciler(gw.engine, options)
    gw.subscribe(
        list(EVENTS),
        reconciler.handle_events,
        name=SUBSCRIBER,
        from_now=True,
        batch=True,
    )
    gw.workers.append(reconciler)
    return reconciler


def reconciler_status(engine: Engine, name: str = "default") -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(R).where(R.c.name == name)).mappings().first()
        in_flight = conn.execute(select(func.count()).select_from(I)).scalar()
    if row is None:
        return None
    return {**dict(row), "in_flight": in_flight}
