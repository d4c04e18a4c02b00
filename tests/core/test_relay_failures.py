"""How the relay reports its own failures: a lost database connection (a server restart) is
one warning line, a failure of any other kind keeps its traceback."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from groupwire import Groupwire
from groupwire.events.relay import SubscriptionCursor


def unreachable_postgres() -> Engine:
    """An engine whose every connection attempt is refused (nothing listens on the port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return create_engine(f"postgresql+psycopg://127.0.0.1:{port}/gone")


@contextmanager
def running(cursor: SubscriptionCursor) -> Iterator[None]:
    thread = threading.Thread(target=cursor.run, args=(0.02,))
    thread.start()
    try:
        yield
    finally:
        cursor.stop.set()
        thread.join(10)


def relay_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "groupwire.relay"]


def test_a_lost_database_is_one_warning_line_until_it_answers_and_other_failures_stay_loud(
    gw: Groupwire, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    subscription = gw.subscribe("*", lambda event: None, name="watcher")
    cursor = SubscriptionCursor(gw.engine, subscription, gw.retry_policy)
    working = cursor.engine
    caplog.set_level(logging.INFO, logger="groupwire.relay")

    cursor.engine = unreachable_postgres()
    with running(cursor):
        time.sleep(1.0)  # some fifty attempts
        lost = relay_records(caplog)
        caplog.clear()
        cursor.engine = working
        time.sleep(0.5)
        back = relay_records(caplog)
        caplog.clear()
        # A store without Groupwire's tables: not a lost connection, a failure to look into.
        cursor.engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        time.sleep(0.3)
        broken = relay_records(caplog)
        cursor.engine = working

    assert [(r.levelno, r.exc_info) for r in lost] == [(logging.WARNING, None)]
    assert "relay for watcher: the database connection is lost (" in lost[0].getMessage()
    assert "\n" not in lost[0].getMessage()
    assert [r.getMessage() for r in back] == ["relay for watcher: the database answers again"]
    assert broken and all(r.levelno == logging.ERROR and r.exc_info for r in broken)
    assert broken[0].getMessage() == "relay for watcher failed; retrying"
