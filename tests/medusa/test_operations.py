"""The bridge in an operator's hands: the capture role's permissions, uninstall, an invalidated
slot and a restart of PostgreSQL.

These need Medusa's customer tables and a PostgreSQL server, not a running Medusa: the tables
are made as Medusa's migrations make them (``customer_tables``). Permissions are tried on the
shared test server with a role of the test's own (created and dropped by it); what needs
cluster-wide settings or a restart runs on a cluster of the test's own (``private_postgres``),
never on the shared one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from groupwire import Groupwire
from groupwire.api.app import create_app
from groupwire.cli import app as cli_app
from groupwire.medusa import CaptureOptions, MedusaCapture
from groupwire.medusa import slot as slots
from groupwire.medusa.capture import SlotInvalidated
from tests.conftest import POSTGRES_URL
from tests.medusa.customer_tables import MedusaTables, capture_role, medusa_tables
from tests.medusa.private_postgres import PrivateCluster, private_postgres

REPO = Path(__file__).resolve().parents[2]


def cli(*args: Any, env: dict[str, str] | None = None) -> Result:
    environment = {"COLUMNS": "200", "GROUPWIRE_PLUGINS": "", **(env or {})}
    return CliRunner().invoke(cli_app, [str(a) for a in args], env=environment)


def open_store(url: str) -> Groupwire:
    return Groupwire.open(url, load_entry_points=False, plugins=[])


def install(
    store_url: str, medusa_url: str, slot: str, publication: str, *, resync: bool = False
) -> str:
    """Capture installed (publication, slot, copy) and closed again, as a stopped capture."""
    gw = open_store(store_url)
    try:
        options = CaptureOptions(
            medusa_url=medusa_url, slot=slot, publication=publication, resync=resync
        )
        capture = MedusaCapture(gw.service, options)
        try:
            return capture.install()
        finally:
            capture.close()
    finally:
        gw.close()


def names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return f"gw_test_{suffix}", f"gw_test_pub_{suffix}"


@pytest.fixture
def tables() -> Iterator[MedusaTables]:
    with medusa_tables(POSTGRES_URL) as value:
        yield value


# --- the capture role's permissions ------------------------------------------------------------


def test_given_the_capture_role_when_it_may_not_create_the_publication_then_the_statement_to_run(
    tables: MedusaTables, tmp_path: Path
) -> None:
    slot, publication = names()
    store = f"sqlite:///{tmp_path / 'gw.db'}"
    with capture_role(tables) as role_url:
        refused = cli(
            "--db", store, "medusa", "capture", "--medusa-url", role_url,
            "--slot", slot, "--publication", publication,
        )  # fmt: skip
        message = " ".join(refused.output.split())
        statements = re.findall(r"^\s+(CREATE PUBLICATION [^;]+;)", refused.output, re.M)
        assert statements, refused.output
        # The owner runs what it was told; then the capture role starts as it is.
        for statement in statements:
            tables.sql(statement)
        installed = install(store, role_url, slot, publication)

    assert refused.exit_code == 1
    assert f"database {tables.database}" in message  # PostgreSQL's own words are kept
    assert f"lacks CREATE on database {tables.database}" in message
    assert "ownership of the tables customer, customer_address, customer_group" in message
    assert statements == [
        f'CREATE PUBLICATION "{publication}" FOR TABLE "public"."customer_group",'
        ' "public"."customer_group_customer", "public"."customer", "public"."customer_address",'
        ' "public"."order", "public"."order_summary";'
    ]
    assert installed == "created"


def test_given_a_capture_role_owning_the_tables_without_create_then_the_grant_is_offered(
    tables: MedusaTables, tmp_path: Path
) -> None:
    slot, publication = names()
    store = f"sqlite:///{tmp_path / 'gw.db'}"
    with capture_role(tables) as role_url:
        role = role_url.split("//")[1].split("@")[0]
        for table in slots.TABLES:
            tables.sql(f'ALTER TABLE "{table}" OWNER TO "{role}"')
        args = ("--db", store, "medusa", "capture", "--medusa-url", role_url)
        refused = cli(*args, "--slot", slot, "--publication", publication)
        grants = re.findall(r"^\s+(GRANT CREATE [^;]+;)", refused.output, re.M)
        for grant in grants:
            tables.sql(grant)
        installed = install(store, role_url, slot, publication)
        for table in slots.TABLES:  # back to the owner, so that the role can be dropped
            tables.sql(f'ALTER TABLE "{table}" OWNER TO CURRENT_USER')

    message = " ".join(refused.output.split())
    assert refused.exit_code == 1
    assert f"lacks CREATE on database {tables.database}." in message
    assert grants == [f'GRANT CREATE ON DATABASE "{tables.database}" TO "{role}";']
    assert installed == "created"


# --- uninstall -----------------------------------------------------------------------------------


def test_given_the_capture_role_when_uninstalling_then_it_drops_what_it_may_and_tells_the_rest(
    tables: MedusaTables, tmp_path: Path
) -> None:
    slot, publication = names()
    store = f"sqlite:///{tmp_path / 'gw.db'}"
    # As the guide says for a capture role that owns nothing: the owner made the publication.
    with slots.connect(tables.url) as conn:
        conn.execute(slots.publication_statement(publication, "public"))
    with capture_role(tables) as role_url:
        install(store, role_url, slot, publication)
        args = ("--db", store, "medusa", "uninstall", "--medusa-url", role_url)
        first = cli(*args, "--slot", slot, "--publication", publication, "--forget")
        slot_after_first = tables.sql("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s",
                                      (slot,))  # fmt: skip
        again = cli(*args, "--slot", slot, "--publication", publication)
        statements = re.findall(r"^\s*(DROP PUBLICATION [^;]+;)", first.output, re.M)
        for statement in statements:
            tables.sql(statement)  # the owner does the rest
        done = cli(*args, "--slot", slot, "--publication", publication)
    gw = open_store(store)
    try:
        with gw.engine.connect() as conn:
            positions = conn.exec_driver_sql("SELECT count(*) FROM medusa_stream").scalar()
    finally:
        gw.close()

    assert first.exit_code == 3, first.output
    assert f"slot {slot}: dropped" in first.output
    assert f"publication {publication}: left" in first.output
    assert f"must be owner of publication {publication}" in first.output
    assert statements == [f'DROP PUBLICATION IF EXISTS "{publication}";']
    assert "Groupwire's capture position and membership map: forgotten" in first.output
    assert slot_after_first == [] and positions == 0
    assert again.exit_code == 3, again.output
    assert f"slot {slot}: already gone" in again.output
    assert f"publication {publication}: left" in again.output
    assert done.exit_code == 0, done.output
    assert f"slot {slot}: already gone" in done.output
    assert f"publication {publication}: already gone" in done.output
    assert tables.sql("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)) == []


# --- an invalidated slot --------------------------------------------------------------------------


def invalidate(cluster: PrivateCluster, tables: MedusaTables, slot: str) -> None:
    """Write WAL elsewhere on the cluster, switching segments and checkpointing, until the
    slot (read by nobody) falls past max_slot_wal_keep_size and PostgreSQL invalidates it."""
    with slots.connect(cluster.url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS filler (x text)")
        for _ in range(200):
            conn.execute("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 300)")
            conn.execute("SELECT pg_switch_wal()")
            conn.execute("CHECKPOINT")
            state = tables.sql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s",
                               (slot,))  # fmt: skip
            if state == [("lost",)]:
                return
    raise AssertionError(f"slot {slot} was not invalidated: {state}")


def serve_probe(store: str, medusa_url: str, slot: str) -> tuple[str, dict[str, Any]]:
    """/metrics and /health of an API process with the Medusa plugin loaded."""
    env = {"GROUPWIRE_MEDUSA_URL": medusa_url, "GROUPWIRE_MEDUSA_SLOT": slot}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        gw = Groupwire.open(store, load_entry_points=False, plugins=["groupwire.medusa.plugin"])
        try:
            with TestClient(create_app(gw)) as client:
                return client.get("/metrics").text, client.get("/health").json()
        finally:
            gw.close()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_cli_process(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GROUPWIRE_PLUGINS": "", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    try:
        return subprocess.run(
            [sys.executable, "-m", "groupwire.cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        command = " ".join(args)
        raise AssertionError(f"`groupwire {command}` still runs after {timeout} s") from error


@pytest.mark.slow
def test_given_an_invalidated_slot_then_status_health_and_metrics_say_so_and_capture_refuses(
    tmp_path: Path,
) -> None:
    slot, publication = names()
    store = f"sqlite:///{tmp_path / 'gw.db'}"
    with (
        private_postgres(max_slot_wal_keep_size="'2MB'", wal_segsize_mb=1) as cluster,
        medusa_tables(cluster.url) as tables,
    ):
        gw = open_store(store)
        capture = MedusaCapture(
            gw.service, CaptureOptions(medusa_url=tables.url, slot=slot, publication=publication)
        )
        try:
            capture.install()
            capture.close()  # a capture that stopped (and was forgotten about)
            status_args = ("--db", store, "medusa", "status", "--medusa-url", tables.url)
            healthy = json.loads(cli(*status_args, "--slot", slot, "--json").output)
            healthy_metrics, _ = serve_probe(store, tables.url, slot)
            invalidate(cluster, tables, slot)

            lost_json = json.loads(cli(*status_args, "--slot", slot, "--json").output)
            lost_text = cli(*status_args, "--slot", slot)
            metrics, health = serve_probe(store, tables.url, slot)
            refused = run_cli_process(
                "--db", store, "medusa", "capture", "--medusa-url", tables.url,
                "--slot", slot, "--publication", publication, timeout=60,
            )  # fmt: skip
            # A capture that was running when it happened: its loop stops instead of retrying.
            stop = threading.Event()
            timer = threading.Timer(20, stop.set)
            timer.start()
            started = time.monotonic()
            try:
                with pytest.raises(SlotInvalidated):
                    capture.run(stop)
            finally:
                timer.cancel()
                capture.close()
            gave_up_after = time.monotonic() - started
        finally:
            gw.close()
        # The way out the message gives: a re-sync on the same store, from a new slot.
        again = install(store, tables.url, slot, publication, resync=True)

    assert healthy["slot_exists"] is True and healthy["wal_status"] == "reserved"
    assert isinstance(healthy["safe_wal_size"], int) and healthy["warning"] is None
    assert f'groupwire_medusa_slot_safe_wal_size_bytes{{slot="{slot}"}}' in healthy_metrics
    assert lost_json["wal_status"] == "lost"
    assert (
        "invalidated" in lost_json["warning"]
        and "groupwire medusa capture --resync" in lost_json["warning"]
    )
    assert "wal_status: lost" in lost_text.output
    assert "warning: replication slot" in " ".join(lost_text.output.split())
    assert health["checks"]["medusa_slot"] == "error: SlotInvalidated"
    assert f'groupwire_medusa_slot_wal_status{{slot="{slot}",status="lost"}} 1.0' in metrics
    assert f'groupwire_medusa_slot_wal_status{{slot="{slot}",status="reserved"}} 0.0' in metrics
    assert refused.returncode == 1, refused.stdout + refused.stderr
    refusal = " ".join(refused.stderr.split())
    assert "is invalidated" in refusal and "groupwire medusa capture --resync" in refusal
    assert "Capturing" not in refused.stdout
    assert gave_up_after < 15
    assert again == "resynced"


# --- a restart of PostgreSQL ----------------------------------------------------------------------


def wait_for_lines(path: Path, count: int, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    raise AssertionError(f"{count} events expected at the subscriber, got: {lines}")


def wait_for_text(path: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in {path}: {path.read_text()}")
        time.sleep(0.1)


@pytest.mark.slow
def test_given_capture_when_postgresql_restarts_then_it_recovers_and_logs_one_clear_line_each(
    tmp_path: Path,
) -> None:
    slot, publication = names()
    record = tmp_path / "record.txt"
    log = tmp_path / "capture.log"
    with private_postgres() as cluster, medusa_tables(cluster.url) as tables:
        # Groupwire's store on the same server, as when Medusa and Groupwire share one: the
        # restart cuts the relay's connections too.
        store = cluster.url.replace("postgresql://", "postgresql+psycopg://")
        env = {
            **os.environ,
            "GROUPWIRE_PLUGINS": "tests.cli.recording_plugin",
            "GROUPWIRE_TEST_RECORD_FILE": str(record),
            "PYTHONPATH": str(REPO),
            "COLUMNS": "200",
        }
        with log.open("w") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "groupwire.cli", "--db", store, "medusa", "capture",
                 "--medusa-url", tables.url, "--slot", slot, "--publication", publication],
                cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_for_text(log, "Capturing")
            tables.sql("INSERT INTO customer_group (id, name) VALUES ('cusgroup_1', 'One')")
            wait_for_lines(record, 1)
            cluster.restart()
            tables.sql("INSERT INTO customer_group (id, name) VALUES ('cusgroup_2', 'Two')")
            wait_for_lines(record, 2)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            finally:
                if process.poll() is None:
                    process.kill()
        gw = open_store(store)
        try:
            created = [e.data["id"] for e in gw.events.list(limit=None)]
        finally:
            gw.close()

    text = log.read_text()
    assert created == ["cusgroup_1", "cusgroup_2"]  # nothing lost, nothing doubled
    assert record.read_text().splitlines() == [
        "1 customer_group.created",
        "2 customer_group.created",
    ]
    assert "Traceback" not in text, text
    ended = re.findall(r"replication stream of slot '\w+' ended: (.*?)\)?; starting", text)
    assert ended and all(reason.strip() for reason in ended), text
    assert "closed the connection" in ended[0] or "terminating" in ended[0], text
    relay = [line for line in text.splitlines() if line.startswith("relay for")]
    assert all("the database connection is lost (" in line for line in relay), text
