"""The admin page over HTTP: who may see it, how changes are made, how errors are shown.

Runs on SQLite and PostgreSQL (the ``gw`` fixture). The browser test (test_browser.py)
drives the same pages in a real Chromium.
"""

from __future__ import annotations

import re

import pytest

from groupwire import Groupwire
from groupwire.auth import keys
from tests.cli.conftest import free_port
from tests.ui.conftest import SESSION_COOKIE, alert, hidden, notice, sign_in

PAGES = ["/app/groups", "/app/customers", "/app/events", "/app/webhooks"]


def group_events(gw: Groupwire) -> list[str]:
    return [event.type for event in gw.events.list(limit=None)]


# --- signing in ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, "/app/groups/cusgroup_x"])
def test_given_no_session_when_a_page_is_asked_then_it_redirects_to_the_sign_in_form(
    browser, path: str
) -> None:
    answer = browser.get(path, follow_redirects=False)

    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/login?next=" + path.replace("/", "%2F")


def test_given_a_valid_key_when_signing_in_then_a_strict_httponly_cookie_opens_every_page(
    browser, gw: Groupwire
) -> None:
    _, secret = keys.create_key(gw.engine, "page user", ["read"])

    answer = sign_in(browser, secret)

    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/groups"
    cookie = next(
        header
        for header in answer.headers.get_list("set-cookie")
        if header.startswith(SESSION_COOKIE + "=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/;" in cookie
    assert secret not in cookie  # the cookie is a session token, not the API key
    for path in PAGES:
        page = browser.get(path)
        assert page.status_code == 200, path
        assert "page user" in page.text  # the key's name, in the top bar


@pytest.mark.parametrize("secret", ["gw_sk_" + "x" * 43, "not a key", ""])
def test_given_an_unknown_or_malformed_key_when_signing_in_then_it_is_refused_without_session(
    browser, secret: str
) -> None:
    answer = sign_in(browser, secret)

    assert answer.status_code == 401
    assert alert(answer.text) == "unauthorized — That API key is unknown or revoked."
    assert SESSION_COOKIE not in browser.cookies
    assert browser.get("/app/groups", follow_redirects=False).status_code == 303


def test_given_a_revoked_key_then_signing_in_is_refused_and_its_open_sessions_end(
    signed_in, browser, gw: Groupwire
) -> None:
    client, key, _ = signed_in(["write"])
    other_key, other_secret = keys.create_key(gw.engine, "soon revoked", ["write"])
    keys.revoke_key(gw.engine, other_key.id)
    assert sign_in(browser, other_secret).status_code == 401

    keys.revoke_key(gw.engine, key.id)

    assert client.get("/app/groups", follow_redirects=False).status_code == 303


def test_given_a_sign_in_post_without_the_form_token_then_it_is_refused(
    browser, gw: Groupwire
) -> None:
    _, secret = keys.create_key(gw.engine, "page user", ["write"])

    answer = browser.post(
        "/app/login",
        data={"login_token": "forged", "api_key": secret},
        follow_redirects=False,
    )

    assert answer.status_code == 403
    assert SESSION_COOKIE not in browser.cookies


def test_when_signing_in_with_an_outside_next_address_then_the_page_stays_on_this_site(
    browser, gw: Groupwire
) -> None:
    _, secret = keys.create_key(gw.engine, "page user", ["read"])
    token = hidden(browser.get("/app/login").text, "login_token")

    answer = browser.post(
        "/app/login",
        data={"login_token": token, "api_key": secret, "next": "//evil.example/x"},
        follow_redirects=False,
    )

    assert answer.headers["location"] == "/app/groups"


def test_when_signing_out_then_the_session_is_gone_even_for_a_copied_cookie(signed_in) -> None:
    client, _, csrf = signed_in(["read"])
    copied = client.cookies[SESSION_COOKIE]

    answer = client.post("/app/logout", data={"csrf_token": csrf}, follow_redirects=False)

    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/login"
    client.cookies.set(SESSION_COOKIE, copied)
    assert client.get("/app/groups", follow_redirects=False).status_code == 303


# --- CSRF and scopes -------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_given_a_form_without_the_session_csrf_token_then_nothing_changes(
    signed_in, gw: Groupwire, token: str | None
) -> None:
    client, _, _ = signed_in(["admin"])
    data = {"name": "Forged"} | ({} if token is None else {"csrf_token": token})

    answer = client.post("/app/groups", data=data)

    assert answer.status_code == 403
    assert "security token" in alert(answer.text)
    assert gw.groups.list().count == 0
    assert group_events(gw) == []


def test_given_another_sessions_csrf_token_then_the_form_is_refused(
    signed_in, gw: Groupwire
) -> None:
    mine, _, _ = signed_in(["write"])
    _, _, theirs = signed_in(["write"])

    answer = mine.post("/app/groups", data={"csrf_token": theirs, "name": "Forged"})

    assert answer.status_code == 403
    assert gw.groups.list().count == 0


def test_given_a_read_only_key_then_pages_show_but_changes_are_refused_as_the_api_would(
    signed_in, gw: Groupwire
) -> None:
    client, _, csrf = signed_in(["read"])

    answer = client.post("/app/groups", data={"csrf_token": csrf, "name": "VIP"})

    assert answer.status_code == 403
    assert alert(answer.text) == "forbidden — This API key lacks the 'write' scope"
    assert gw.groups.list().count == 0


def test_the_session_cookie_reads_the_admin_api_but_never_changes_anything_there(
    signed_in, gw: Groupwire
) -> None:
    client, _, _ = signed_in(["admin"])
    group = gw.groups.create("VIP")

    listed = client.get("/admin/customer-groups")
    changed = client.post(f"/admin/customer-groups/{group.id}", json={"name": "Renamed"})
    deleted = client.delete(f"/admin/customer-groups/{group.id}")

    assert listed.status_code == 200
    assert [g["name"] for g in listed.json()["customer_groups"]] == ["VIP"]
    assert (changed.status_code, changed.json()["type"]) == (401, "unauthorized")
    assert (deleted.status_code, deleted.json()["type"]) == (401, "unauthorized")
    assert gw.groups.get(group.id).name == "VIP"


def test_a_forged_session_cookie_reads_nothing_from_the_admin_api(browser) -> None:
    browser.cookies.set(SESSION_COOKIE, "gw_ui_" + "x" * 43)

    answer = browser.get("/admin/customer-groups")

    assert (answer.status_code, answer.json()["type"]) == (401, "unauthorized")


# --- groups ----------------------------------------------------------------------------------


def test_creating_a_group_from_the_page_writes_it_with_the_signed_in_key_as_actor(
    signed_in, gw: Groupwire
) -> None:
    client, key, csrf = signed_in(["write"])

    answer = client.post(
        "/app/groups",
        data={"csrf_token": csrf, "name": "  VIP  ", "description": "Best customers"},
    )

    assert answer.status_code == 200
    [group] = gw.groups.list().items
    assert (group.name, group.description) == ("VIP", "Best customers")
    assert str(answer.url).endswith(f"/app/groups/{group.id}")
    assert notice(answer.text) == "Group “VIP” created."
    [event] = gw.events.list(limit=None)
    assert (event.type, event.actor, event.subject) == ("customer_group.created", key.id, group.id)


def test_a_duplicate_group_name_is_shown_in_the_page_with_the_typed_values_kept(
    signed_in, gw: Groupwire
) -> None:
    client, _, csrf = signed_in(["write"])
    gw.groups.create("VIP")

    answer = client.post(
        "/app/groups", data={"csrf_token": csrf, "name": "VIP", "description": "again"}
    )

    assert answer.status_code == 400
    assert alert(answer.text) == ("invalid data — Customer group with name: VIP, already exists.")
    assert ">again</textarea>" in answer.text
    assert gw.groups.list().count == 1


def test_the_groups_list_searches_names_and_descriptions(signed_in, gw: Groupwire) -> None:
    client, _, _ = signed_in(["read"])
    gw.groups.create("VIP", description="big spenders")
    gw.groups.create("Wholesale")
    gw.groups.create("Newsletter", description="VIP mailing")

    page = client.get("/app/groups", params={"q": "vip"}).text

    names = re.findall(r'<td><a href="/app/groups/[^"]+">([^<]+)</a></td>', page)
    assert names == ["Newsletter", "VIP"]


def test_editing_a_group_saves_name_description_and_exact_metadata(
    signed_in, gw: Groupwire
) -> None:
    client, _, csrf = signed_in(["write"])
    group = gw.groups.create("VIP", metadata={"tier": "gold", "old": 1})

    answer = client.post(
        f"/app/groups/{group.id}",
        data={
            "csrf_token": csrf,
            "version": str(group.version),
            "name": "VIP+",
            "description": "",
            "metadata": '{"tier": "platinum", "new": [1, 2]}',
        },
    )

    assert answer.status_code == 200, alert(answer.text)
    saved = gw.groups.get(group.id)
    assert (saved.name, saved.description) == ("VIP+", None)
    assert saved.metadata == {"tier": "platinum", "new": [1, 2]}


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ("[1, 2]", 'Metadata must be a JSON object, like {"tier": "gold"}'),
        ("{oops", "Metadata is not valid JSON"),
    ],
)
def test_editing_a_group_with_bad_metadata_changes_nothing_and_says_why(
    signed_in, gw: Groupwire, metadata: str, message: str
) -> None:
    client, _, csrf = signed_in(["write"])
    group = gw.groups.create("VIP", metadata={"tier": "gold"})

    answer = client.post(
        f"/app/groups/{group.id}",
        data={"csrf_token": csrf, "name": "Other", "metadata": metadata},
    )

    assert answer.status_code == 400
    assert message in alert(answer.text)
    assert gw.groups.get(group.id).name == "VIP"
    assert group_events(gw) == ["customer_group.created"]


def test_editing_a_group_someone_changed_meanwhile_is_refused(signed_in, gw: Groupwire) -> None:
    client, _, csrf = signed_in(["write"])
    group = gw.groups.create("VIP")
    form = client.get(f"/app/groups/{group.id}").text
    gw.groups.update(group.id, name="Renamed elsewhere")

    answer = client.post(
        f"/app/groups/{group.id}",
        data={"csrf_token": csrf, "version": hidden(form, "version"), "name": "Mine"},
    )

    assert answer.status_code == 412
    assert "Someone changed this group after you opened it" in alert(answer.text)
    assert gw.groups.get(group.id).name == "Renamed elsewhere"


def test_deleting_a_group_from_the_page(signed_in, gw: Groupwire) -> None:
    client, _, csrf = signed_in(["write"])
    group = gw.groups.create("VIP")

    answer = client.post(f"/app/groups/{group.id}/delete", data={"csrf_token": csrf})

    assert notice(answer.text) == "Group “VIP” deleted."
    assert gw.groups.list().count == 0


def test_an_unknown_group_is_a_404_page_with_the_api_error(signed_in) -> None:
    client, _, _ = signed_in(["read"])

    answer = client.get("/app/groups/cusgroup_nope")

    assert answer.status_code == 404
    assert alert(answer.text) == "not found — Customer group with id: cusgroup_nope not found"


# --- members ---------------------------------------------------------------------------------


def test_bulk_paste_adds_every_pasted_customer_in_one_change(signed_in, gw: Groupwire) -> None:
    client, key, csrf = signed_in(["write"])
    group = gw.groups.create("VIP")
    ada = gw.customers.create("ada@example.com")
    bob = gw.customers.create("bob@example.com")
    gw.groups.add_customers(group.id, [bob.id])
    before = gw.events.last_sequence()

    answer = client.post(
        f"/app/groups/{group.id}/members",
        data={
            "csrf_token": csrf,
            "emails": "Ada <ADA@example.com>,\n bob@example.com; ada@example.com",
        },
    )

    assert answer.status_code == 200, alert(answer.text)
    assert notice(answer.text) == "1 added to the group; 1 already were members."
    assert {c.id for c in gw.groups.members(group.id)} == {ada.id, bob.id}
    [added] = gw.events.list(after=before, limit=None)
    assert (added.type, added.actor) == ("customer_group.customer_added", key.id)
    assert added.data["customer_id"] == ada.id
    assert "ada@example.com" in answer.text  # the members table


def test_bulk_paste_with_unknown_or_malformed_addresses_adds_nobody_and_lists_them(
    signed_in, gw: Groupwire
) -> None:
    client, _, csrf = signed_in(["write"])
    group = gw.groups.create("VIP")
    gw.customers.create("ada@example.com")
    before = gw.events.last_sequence()
    pasted = "ada@example.com\nnobody@example.com\nnot-an-address\nghost@example.org"

    answer = client.post(
        f"/app/groups/{group.id}/members", data={"csrf_token": csrf, "emails": pasted}
    )

    assert answer.status_code == 400
    assert alert(answer.text).startswith(
        "invalid data — No member was added: 2 of 3 addresses match no customer; "
        "1 entry is not an email address."
    )
    unknown = re.search(r'id="unknown-emails">(.*?)</ul>', answer.text, re.S)
    assert unknown is not None
    assert re.findall(r"<code>([^<]+)</code>", unknown.group(1)) == [
        "nobody@example.com",
        "ghost@example.org",
    ]
    assert "not-an-address" in alert(answer.text)
    assert f">{pasted}</textarea>" in answer.text  # the paste is kept, to be corrected
    assert gw.groups.members(group.id) == []
    assert gw.events.list(after=before, limit=None) == []


def test_removing_selected_members(signed_in, gw: Groupwire) -> None:
    client, _, csrf = signed_in(["write"])
    group = gw.groups.create("VIP")
    ada = gw.customers.create("ada@example.com")
    bob = gw.customers.create("bob@example.com")
    gw.groups.add_customers(group.id, [ada.id, bob.id])

    answer = client.post(
        f"/app/groups/{group.id}/members/remove",
        data={"csrf_token": csrf, "customer_id": [ada.id]},
    )

    assert notice(answer.text) == "1 removed from the group."
    assert [c.id for c in gw.groups.members(group.id)] == [bob.id]


def test_removing_with_nothing_selected_says_so_on_the_group_page(signed_in, gw: Groupwire) -> None:
    client, _, csrf = signed_in(["write"])
    group = gw.groups.create("VIP")

    answer = client.post(f"/app/groups/{group.id}/members/remove", data={"csrf_token": csrf})

    assert answer.status_code == 400
    assert alert(answer.text) == "invalid data — Select at least one member to remove"
    assert 'id="add-members"' in answer.text  # still the group's page


# --- customers, events, webhooks ---------------------------------------------------------------


def test_creating_and_searching_customers(signed_in, gw: Groupwire) -> None:
    client, _, csrf = signed_in(["write"])
    vip = gw.groups.create("VIP")
    other = gw.customers.create("zed@example.com")
    gw.groups.add_customers(vip.id, [other.id])

    created = client.post(
        "/app/customers",
        data={"csrf_token": csrf, "email": "Ada@Example.com", "first_name": "Ada"},
    )
    duplicate = client.post("/app/customers", data={"csrf_token": csrf, "email": "ada@example.com"})
    everyone = client.get("/app/customers").text

    assert notice(created.text) == "Customer ada@example.com created."
    assert duplicate.status_code == 400
    assert "already exists" in alert(duplicate.text)
    assert gw.customers.list().count == 2
    assert re.findall(r"<td>([^<@]+@[^<]+)</td>", everyone) == [
        "ada@example.com",
        "zed@example.com",
    ]
    assert f'href="/app/groups/{vip.id}">VIP</a>' in everyone  # zed's groups


def test_the_live_feed_page_lists_the_latest_events_and_streams_after_the_newest(
    signed_in, gw: Groupwire
) -> None:
    client, _, _ = signed_in(["read"])
    group = gw.groups.create("VIP")
    customer = gw.customers.create("ada@example.com")
    gw.groups.add_customers(group.id, [customer.id])

    page = client.get("/app/events").text

    assert re.findall(r'data-type="([^"]+)"', page) == [
        "customer_group.customer_added",
        "customer.created",
        "customer_group.created",
    ]
    assert f'data-after="{gw.events.last_sequence()}"' in page
    assert 'data-stream-url="/admin/events/stream"' in page


def test_the_webhooks_pages_list_endpoints_and_their_delivery_log(signed_in, gw: Groupwire) -> None:
    from groupwire.webhooks import webhooks_of

    client, _, csrf = signed_in(["admin"])
    writer, _, writer_csrf = signed_in(["write"])
    url = f"http://127.0.0.1:{free_port()}/in"  # nothing listens there: the attempt fails

    refused = writer.post("/app/webhooks", data={"csrf_token": writer_csrf, "url": url})
    created = client.post(
        "/app/webhooks",
        data={"csrf_token": csrf, "url": url, "event_types": "customer_group.*"},
    )
    [endpoint] = webhooks_of(gw).list().items
    gw.groups.create("VIP")
    gw.deliver_pending()  # the event becomes a webhook message
    webhooks_of(gw).deliver_due()  # one attempt, refused
    listing = client.get("/app/webhooks").text
    detail = client.get(f"/app/webhooks/{endpoint.id}").text

    assert refused.status_code == 403
    assert alert(refused.text) == "forbidden — This API key lacks the 'admin' scope"
    assert created.status_code == 200
    assert re.search(r'id="webhook-secret">whsec_[^<]+<', created.text)
    assert url in listing
    assert "whsec_" not in listing + detail  # the secret is shown once
    messages = re.search(r'id="messages">(.*?)</table>', detail, re.S)
    attempts = re.search(r'id="attempts">(.*?)</table>', detail, re.S)
    assert messages and "customer_group.created" in messages.group(1)
    assert attempts and len(re.findall(r"<tr>", attempts.group(1))) == 2  # head + 1 attempt
    assert ">failed</span>" in attempts.group(1)


# --- the page itself ---------------------------------------------------------------------------


def test_pages_load_only_bundled_files_and_forbid_other_origins(signed_in, gw: Groupwire) -> None:
    client, _, _ = signed_in(["read"])
    group = gw.groups.create("VIP")

    page = client.get(f"/app/groups/{group.id}")
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css)[^"]*)"', page.text)
    files = [client.get(asset) for asset in assets]

    assert sorted(a.split("?")[0] for a in assets) == ["/app/static/app.css", "/app/static/app.js"]
    assert [f.status_code for f in files] == [200, 200]
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page.text)
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert client.get("/app/static/nothing.js").status_code == 404


def test_a_customer_without_email_is_created_listed_and_shown_among_members(
    signed_in, gw: Groupwire
) -> None:
    client, _, csrf = signed_in(["write"])
    vip = gw.groups.create("VIP")

    created = client.post(
        "/app/customers", data={"csrf_token": csrf, "email": " ", "first_name": "John"}
    )
    [john] = gw.customers.list().items
    gw.groups.add_customers(vip.id, [john.id])
    everyone = client.get("/app/customers").text
    members = client.get(f"/app/groups/{vip.id}").text

    assert notice(created.text) == f"Customer {john.id} (no email) created."
    assert (john.email, john.first_name) == (None, "John")
    for page in (everyone, members):
        assert '<span class="muted">(no email)</span>' in page
        assert f"<code>{john.id}</code>" in page
        assert "None" not in page
    assert f'aria-label="Select {john.id}"' in members
