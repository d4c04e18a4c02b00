"""Idempotent handling: a redelivered event is not handled twice (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from groupwire.events.idempotency import first_time, idempotent


def make_effects_table(gw) -> None:
    with gw.idempotency.transaction() as conn:
        conn.execute(text("CREATE TABLE effect (event_id varchar(64), note varchar(64))"))


def effects(gw) -> list[tuple[str, str]]:
    with gw.engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, note FROM effect ORDER BY note")).all()
        return [tuple(row) for row in rows]


def test_given_an_event_when_first_time_is_asked_twice_then_only_the_first_answer_is_yes(gw):
    assert gw.idempotency.first_time("mailer", "evt_1") is True
    assert gw.idempotency.first_time("mailer", "evt_1") is False
    assert gw.idempotency.first_time("auditor", "evt_1") is True  # consumers are independent
    assert gw.idempotency.seen("mailer", "evt_1")
    assert not gw.idempotency.seen("mailer", "evt_2")


def test_given_an_idempotent_handler_when_the_same_event_is_delivered_three_times_then_its_effect_happens_once(  # noqa: E501
    gw,
):
    make_effects_table(gw)
    calls: list[str] = []

    @gw.idempotency.handler("loyalty")
    def award(event, conn) -> None:
        calls.append(event.id)
        conn.execute(text("INSERT INTO effect VALUES (:id, 'award')"), {"id": event.id})

    group = gw.groups.create("VIP")
    [event] = gw.events.list(subject=group.id)
    for _ in range(3):
        award(event)

    assert calls == [event.id]
    assert effects(gw) == [(event.id, "award")]


def test_given_a_handler_failing_after_its_effect_when_redelivered_then_the_record_rolled_back_with_it_and_it_runs_again(  # noqa: E501
    gw,
):
    make_effects_table(gw)
    attempts: list[int] = []

    @idempotent(gw, "fragile")
    def fragile(event, conn) -> None:
        attempts.append(1)
        conn.execute(
            text("INSERT INTO effect VALUES (:id, :n)"), {"id": event.id, "n": str(len(attempts))}
        )
        if len(attempts) == 1:
            raise RuntimeError("crash after the effect, before the commit")

    group = gw.groups.create("VIP")
    [event] = gw.events.list(subject=group.id)
    with pytest.raises(RuntimeError):
        fragile(event)
    assert effects(gw) == [] and not gw.idempotency.seen("fragile", event.id)
    fragile(event)
    fragile(event)

    assert len(attempts) == 2
    assert effects(gw) == [(event.id, "2")]


@pytest.mark.postgres_only
def test_given_two_concurrent_first_deliveries_on_postgresql_then_exactly_one_wins(gw):
    barrier = threading.Barrier(8)
    answers: list[bool] = []
    lock = threading.Lock()

    def deliver() -> None:
        barrier.wait()
        with gw.idempotency.transaction() as conn:
            answer = first_time(conn, "racer", "evt_same")
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(answers) == [False] * 7 + [True]
