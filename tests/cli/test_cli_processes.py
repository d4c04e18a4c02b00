"""``groupwire serve``, ``worker`` and ``migrate`` as real processes, end to end.

Each process is started with ``python -m groupwire.cli`` on a temporary SQLite file, driven
over HTTP on 127.0.0.1 or through the database, asked to stop with SIGTERM and expected to
exit with code 0. Every process is killed in a ``finally`` if it is still running.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory

from groupwire import Groupwire
from groupwire.auth.keys import list_keys
from groupwire.store.migrate import alembic_config
from tests.cli.conftest import PLUGIN, Invoke, cli_process, free_port, json_lines, stop
from tests.cli.recording_plugin import RECORD_FILE

STARTUP_SECONDS = 40


def wait_for_http(process: subprocess.Popen[bytes], url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode}"
        try:
            httpx.get(url, headers=headers, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url} within {STARTUP_SECONDS} s")


def terminate(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(30)


def test_serve_answers_http_with_a_key_made_by_the_cli_and_stops_cleanly_on_sigterm(
    cli: Invoke, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    created = cli("keys", "create", "e2e", "--scope", "write", "--json", "--db", url)
    assert created.exit_code == 0, created.output
    [key] = json_lines(created.stdout)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key['secret']}"}
    log = tmp_path / "serve.out"
    process = cli_process("serve", "--port", str(port), "--db", url, log=log)
    try:
        wait_for_http(process, f"{base}/admin/customer-groups", auth)
        with httpx.Client(base_url=base, headers=auth, timeout=10) as http:
            group = http.post("/admin/customer-groups", json={"name": "VIP"})
            assert group.status_code == 200, group.text
            customer = http.post("/admin/customers", json={"email": "ann@example.com"})
            assert customer.status_code == 200, customer.text
            group_id = group.json()["customer_group"]["id"]
            customer_id = customer.json()["customer"]["id"]
            added = http.post(
                f"/admin/customer-groups/{group_id}/customers", json={"add": [customer_id]}
            )
            assert added.status_code == 200, added.text
            events = http.get("/admin/events", params={"type": "customer_group.customer_added"})
            assert events.status_code == 200, events.text
            assert (
                http.get("/admin/events", headers={"Authorization": "Bearer nope"}).status_code
                == 401
            )

        [event] = events.json()["events"]
        assert event["data"] == {**event["data"], "group_id": group_id, "customer_id": customer_id}
        assert event["actor"] == key["id"]
        assert terminate(process) == 0, log.with_suffix(".err").read_text()
    finally:
        stop(process)
    printed = log.read_text()
    assert f"Groupwire Admin API on http://127.0.0.1:{port}" in printed
    assert "No API key existed" not in printed  # one did: the CLI made it


def test_serve_on_a_database_without_keys_creates_and_prints_an_admin_key_once(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    port = free_port()
    log = tmp_path / "serve.out"
    process = cli_process("serve", "--port", str(port), "--db", url, log=log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while "gw_sk_" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.with_suffix(".err").read_text()
            time.sleep(0.1)
        [secret] = re.findall(r"gw_sk_[A-Za-z0-9_-]+", log.read_text().split("Try:")[0])
        auth = {"Authorization": f"Bearer {secret}"}
        wait_for_http(process, f"http://127.0.0.1:{port}/admin/customer-groups", auth)
        answer = httpx.get(f"http://127.0.0.1:{port}/admin/customer-groups", headers=auth)
        assert answer.status_code == 200, answer.text
        assert terminate(process) == 0
    finally:
        stop(process)
    assert "No API key existed, so an admin key was created" in log.read_text()
    with Groupwire.open(url, load_entry_points=False) as gw:
        [key] = list_keys(gw.engine)
        assert key.scopes == ("admin",)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_on_port_0_prints_the_port_the_system_chose_and_answers_there(
    tmp_path: Path, workers: int
) -> None:
    url = f"sqlite:///{tmp_path / 'anyport.db'}"
    log = tmp_path / "serve.out"
    process = cli_process("serve", "--port", "0", "--workers", str(workers), "--db", url, log=log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while "Groupwire Admin API on" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.with_suffix(".err").read_text()
            time.sleep(0.1)
        printed = log.read_text()
        [served] = re.findall(r"Groupwire Admin API on http://127\.0\.0\.1:(\d+)", printed)
        [tried] = re.findall(r"curl .* http://127\.0\.0\.1:(\d+)/admin/customer-groups", printed)
        [secret] = re.findall(r"gw_sk_[A-Za-z0-9_-]+", printed.split("Try:")[0])
        assert int(served) != 0
        assert tried == served
        base = f"http://127.0.0.1:{served}"
        auth = {"Authorization": f"Bearer {secret}"}
        wait_for_http(process, f"{base}/admin/customer-groups", auth)
        answer = httpx.get(f"{base}/admin/customer-groups", headers=auth)
        assert answer.status_code == 200, answer.text
        assert terminate(process) == 0, log.with_suffix(".err").read_text()
    finally:
        stop(process)


def test_worker_delivers_past_and_new_events_to_plugin_subscribers_then_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    record = tmp_path / "delivered.txt"
    with Groupwire.open(url, load_entry_points=False) as gw:
        gw.groups.create("Before")  # event 1, committed before the worker starts
        log = tmp_path / "worker.out"
        process = cli_process(
            "worker", "--plugin", PLUGIN, "--db", url, log=log, env={RECORD_FILE: str(record)}
        )
        try:
            gw.groups.create("While")  # event 2, committed while it starts or runs
            deadline = time.monotonic() + STARTUP_SECONDS
            while time.monotonic() < deadline and len(_lines(record)) < 2:
                assert process.poll() is None, log.with_suffix(".err").read_text()
                time.sleep(0.1)
            assert terminate(process) == 0, log.with_suffix(".err").read_text()
        finally:
            stop(process)
    assert _lines(record) == ["1 customer_group.created", "2 customer_group.created"]
    assert "test.recorder" in log.read_text().split("subscribers:")[1]
    assert "Stopped." in log.with_suffix(".err").read_text()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_migrate_brings_a_new_database_up_to_date_and_is_idempotent(
    cli: Invoke, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    first = cli("migrate", "--db", url)
    second = cli("migrate", "--db", url)
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    [head] = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert "is up to date (revisions:" in first.stdout and head in first.stdout
    assert first.stdout.split("revisions:")[1] == second.stdout.split("revisions:")[1]
    with Groupwire.open(url, load_entry_points=False, auto_migrate=False) as gw:
        assert gw.events.last_sequence() == 0  # the core tables exist


def test_a_database_url_that_cannot_be_opened_is_an_error_message_not_a_traceback(
    cli: Invoke,
) -> None:
    for command in (["migrate"], ["groups", "list"], ["keys", "list"]):
        result = cli(*command, "--db", "nosuchdriver://nowhere")
        assert result.exit_code == 1, result.output
        assert "cannot open" in result.stderr and "nosuchdriver" in result.stderr
        assert "Traceback" not in result.output
