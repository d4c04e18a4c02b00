"""The admin page end to end, in a real headless Chromium against a real ``groupwire serve``.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``) and the
``playwright`` Python package; the tests fail, never skip, when they are missing. A
screenshot of each step lands in ``test-artifacts/ui/`` (the smart group's flow in
``test-artifacts/ui/smart-group/``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from groupwire import Groupwire
from groupwire.auth.keys import create_key
from tests.cli.conftest import REPO, cli_process, free_port, stop

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_TIMEOUT_MS = 15_000


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 204 and keeps what it was sent."""

    def __init__(self) -> None:
        received: list[dict[str, object]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``groupwire serve`` on a fresh SQLite database, and the secret of a write+admin key."""
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    with Groupwire.open(url, load_entry_points=False) as gw:
        _, secret = create_key(gw.engine, "browser test", ["admin"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = cli_process(
        "serve",
        "--port",
        str(port),
        "--db",
        url,
        "--log-level",
        "warning",
        log=tmp_path / "serve.log",
        env={"GROUPWIRE_WEBHOOKS_ALLOW_PRIVATE": "true", "GROUPWIRE_WEBHOOKS_POLL_INTERVAL": "0.2"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "serve.log.err").read_text()
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "groupwire serve did not answer within 30 s"
            time.sleep(0.1)
        yield base, secret
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(15)
        stop(process)


@pytest.mark.timeout(120)
def test_an_admin_signs_in_creates_a_group_adds_a_member_and_sees_feed_chart_and_webhooks(
    server: tuple[str, str], receiver: Receiver
) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), "install the Debian packages chromium and chromium-driver"
    base, secret = server
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    outside: list[str] = []
    console_errors: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(STEP_TIMEOUT_MS)
            context.on(
                "request",
                lambda r: None if r.url.startswith(base) else outside.append(r.url),
            )
            page = context.new_page()
            watch_errors(page, console_errors)
            page.on("dialog", lambda dialog: dialog.accept())
            shot = Screenshots(page)

            # Signing in: a wrong key is refused in the page, the right one opens the groups.
            page.goto(f"{base}/app")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            shot("sign-in")
            page.get_by_label("API key").fill("gw_sk_wrong")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_contain_text("That API key is unknown or revoked")
            shot("bad-key-refused")
            page.get_by_label("API key").fill(secret)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Customer groups")).to_be_visible()
            expect(page.get_by_text("No group yet")).to_be_visible()
            shot("groups-empty")

            # A webhook endpoint, so that the changes below are delivered somewhere.
            page.get_by_role("link", name="Webhooks").click()
            form = page.locator("#create-webhook")
            form.get_by_label("URL").fill(receiver.url)
            form.get_by_role("button", name="Create endpoint").click()
            expect(page.locator("#webhook-secret")).to_contain_text("whsec_")
            webhook_id = page.locator("h1 + code").inner_text()
            assert webhook_id.startswith("wh_")
            shot("webhook-created")

            # The live feed, open in a second tab from now on (it is never reloaded).
            feed = context.new_page()
            watch_errors(feed, console_errors)
            feed.goto(f"{base}/app/events")
            expect(feed.locator("[data-feed-status]")).to_have_attribute("data-state", "live")

            # A group.
            page.get_by_role("link", name="Groups").click()
            form = page.locator("#create-group")
            form.get_by_label("Name").fill("VIP customers")
            form.get_by_label("Description").fill("Spent more than 1000 last year")
            form.get_by_role("button", name="Create group").click()
            expect(page.get_by_role("heading", name="VIP customers")).to_be_visible()
            expect(page.get_by_role("status")).to_have_text("Group “VIP customers” created.")
            group_id = page.locator("h1 + code").inner_text()
            assert group_id.startswith("cusgroup_")
            expect(page.locator("#chart")).to_have_attribute("data-chart-state", "drawn")
            shot("group-created")

            # A customer, then bulk paste: an unknown address adds nobody and is listed.
            page.get_by_role("link", name="Customers").click()
            form = page.locator("#create-customer")
            form.get_by_label("Email").fill("ada@example.com")
            form.get_by_label("First name").fill("Ada")
            form.get_by_label("Last name").fill("Lovelace")
            form.get_by_role("button", name="Create customer").click()
            expect(page.get_by_role("status")).to_have_text("Customer ada@example.com created.")
            expect(page.locator("#customers")).to_contain_text("Ada Lovelace")
            shot("customer-created")

            page.goto(f"{base}/app/groups/{group_id}")
            paste = page.get_by_label("Paste email addresses")
            paste.fill("ada@example.com\nnobody@example.com")
            page.get_by_role("button", name="Add to group").click()
            expect(page.get_by_role("alert")).to_contain_text("No member was added")
            expect(page.locator("#unknown-emails")).to_have_text("nobody@example.com")
            expect(paste).to_have_value("ada@example.com\nnobody@example.com")
            shot("paste-unknown-email")

            paste.fill("ada@example.com")
            page.get_by_role("button", name="Add to group").click()
            expect(page.get_by_role("status")).to_have_text("1 added to the group.")
            expect(page.locator("#members tbody tr")).to_have_count(1)
            expect(page.locator("#members")).to_contain_text("ada@example.com")

            # The chart: the current hour has one join and one member.
            chart = page.locator("#chart")
            expect(chart).to_have_attribute("data-chart-state", "drawn")
            points = chart.locator("svg circle.point")
            expect(chart.locator('circle.point[data-members="1"][data-joins="1"]')).to_have_count(1)
            declared = int(chart.locator("svg").get_attribute("data-points") or "0")
            assert declared > 0
            assert points.count() == declared
            expect(chart.locator("rect.bar.joins")).to_have_count(1)
            shot("member-added-chart")
            chart.screenshot(path=str(ARTIFACTS / "chart.png"))

            # The feed tab saw the change arrive live, without a reload.
            added = feed.locator('tr[data-type="customer_group.customer_added"]')
            expect(added).to_have_count(1)
            expect(added).to_contain_text(group_id)
            expect(feed.locator('tr[data-type="customer_group.created"]')).to_have_count(1)
            expect(feed.locator('tr[data-type="customer.created"]')).to_have_count(1)
            shot("live-feed", feed)

            # Removing the member (the confirmation is accepted); the chart redraws live.
            page.locator('#members input[name="customer_id"]').check()
            page.get_by_role("button", name="Remove selected").click()
            expect(page.get_by_role("status")).to_have_text("1 removed from the group.")
            expect(page.get_by_text("No member yet.")).to_be_visible()
            expect(chart.locator('circle.point[data-members="0"][data-leaves="1"]')).to_have_count(
                1
            )
            expect(feed.locator('tr[data-type="customer_group.customer_removed"]')).to_have_count(1)
            shot("member-removed")

            # Without the stats route (an older server), the chart says so instead of drawing.
            gone = '{"type": "not_found", "message": "Route GET /admin/.../stats was not found"}'
            page.route("**/stats?*", lambda route: route.fulfill(status=404, body=gone))
            page.reload()
            expect(chart).to_have_attribute("data-chart-state", "unavailable")
            expect(chart.locator("[data-chart-status]")).to_have_text(
                "Stats unavailable: Route GET /admin/.../stats was not found"
            )
            expect(chart.locator("svg")).to_have_count(0)
            page.unroute("**/stats?*")

            # The webhook endpoint's delivery attempts (the dispatcher sends them by itself).
            deadline = time.monotonic() + 30
            while True:
                page.goto(f"{base}/app/webhooks/{webhook_id}")
                if page.locator("#attempts tbody tr").count() >= 3:
                    break
                assert time.monotonic() < deadline, "the webhook attempts never showed"
                time.sleep(0.5)
            expect(page.locator("#attempts")).to_contain_text("succeeded")
            expect(page.locator("#messages")).to_contain_text("customer_group.customer_added")
            shot("webhook-attempts")
            assert {event["type"] for event in receiver.received} >= {
                "customer_group.created",
                "customer_group.customer_added",
                "customer_group.customer_removed",
            }

            # Signing out ends the session.
            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            page.goto(f"{base}/app/groups")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            shot("signed-out")
        finally:
            browser.close()

    assert outside == [], "the page must load nothing from another origin"
    # The sign-in with a wrong key (401), the refused paste (400) and the stats route taken
    # away (404) answer errors on purpose; anything else logged as an error is a fault.
    expected = ("401 (Unauthorized)", "400 (Bad Request)", "404 (Not Found)")
    assert [m for m in console_errors if not m.endswith(expected)] == []


@pytest.mark.timeout(120)
def test_an_admin_sets_a_rule_on_a_group_previews_it_saves_it_and_sees_why_members_are_in(
    server: tuple[str, str],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), "install the Debian packages chromium and chromium-driver"
    base, secret = server
    folder = ARTIFACTS / "smart-group"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    outside: list[str] = []
    console_errors: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(STEP_TIMEOUT_MS)
            context.on(
                "request",
                lambda r: None if r.url.startswith(base) else outside.append(r.url),
            )
            page = context.new_page()
            watch_errors(page, console_errors)
            shot = Screenshots(page, folder)

            page.goto(f"{base}/app")
            page.get_by_label("API key").fill(secret)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Customer groups")).to_be_visible()

            # Two customers, one with a company.
            page.get_by_role("link", name="Customers").click()
            for email, first, company in [
                ("ada@example.com", "Ada", "ACME"),
                ("bob@example.com", "Bob", ""),
            ]:
                form = page.locator("#create-customer")
                form.get_by_label("Email").fill(email)
                form.get_by_label("First name").fill(first)
                form.get_by_label("Company").fill(company)
                form.get_by_role("button", name="Create customer").click()
                expect(page.get_by_role("status")).to_have_text(f"Customer {email} created.")

            # A manual group, then its rule: previewed first (nothing saved), then saved.
            page.get_by_role("link", name="Groups").click()
            form = page.locator("#create-group")
            form.get_by_label("Name").fill("Companies")
            form.get_by_role("button", name="Create group").click()
            expect(page.get_by_role("heading", name="Companies")).to_be_visible()
            expect(page.get_by_text("No member yet.")).to_be_visible()
            rule = page.locator("#rule-form").get_by_label("Rule (JSON)")
            rule.fill('{"company_name": {"$exists": true}}')
            page.get_by_role("button", name="Preview").click()
            preview = page.locator("#rule-preview")
            expect(preview.locator("#preview-joining [data-count]")).to_have_text("1")
            expect(preview.locator("#preview-joining")).to_contain_text("ada@example.com — Ada")
            expect(preview.locator("#preview-leaving [data-count]")).to_have_text("0")
            expect(page.get_by_text("No member yet.")).to_be_visible()
            expect(rule).to_have_value('{"company_name": {"$exists": true}}')
            shot("rule-preview")

            page.get_by_role("button", name="Save rule").click()
            expect(page.get_by_role("status")).to_have_text(
                "Rule saved (version 1); members follow it now."
            )
            expect(page.locator("#rule-preview")).to_have_count(0)
            expect(page.locator("#smart-badge")).to_have_text("smart · rule v1")
            rows = page.locator("#members tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("ada@example.com")
            expect(rows.first.locator("td.why")).to_have_text('{"company_name": {"$exists": true}}')
            expect(page.get_by_role("button", name="Remove selected")).to_have_count(0)
            expect(page.get_by_role("button", name="Add to group")).to_have_count(0)
            expect(page.locator("#scheduled-flips")).to_contain_text("None")
            expect(page.locator("#chart")).to_have_attribute("data-chart-state", "drawn")
            shot("smart-group")
        finally:
            browser.close()

    assert outside == [], "the page must load nothing from another origin"
    assert console_errors == []


def watch_errors(page: Any, errors: list[str]) -> None:
    """Collect what the page logs as an error, and every uncaught script exception."""

    def logged(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    def raised(error: Any) -> None:
        errors.append(f"uncaught: {error}")

    page.on("console", logged)
    page.on("pageerror", raised)


class Screenshots:
    """``shot("name")``: a numbered full-page screenshot in test-artifacts/ui/."""

    def __init__(self, page: object, folder: Path = ARTIFACTS) -> None:
        self.page = page
        self.folder = folder
        self.count = 0

    def __call__(self, name: str, page: object | None = None) -> None:
        self.count += 1
        target = page or self.page
        target.screenshot(  # type: ignore[attr-defined]
            path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True
        )
