"""``create_app_from_env``: the uvicorn factory opens the store from GROUPWIRE_*, runs the relay."""

from __future__ import annotations

from groupwire.api.asgi import create_app_from_env
from groupwire.auth import keys
from tests.api.conftest import TestClient, bearer


def test_given_the_environment_when_the_app_runs_then_it_serves_and_delivers_events(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("GROUPWIRE_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("GROUPWIRE_LOAD_ENTRY_POINTS", "false")
    app = create_app_from_env()
    gw = app.state.gw
    seen: list[str] = []
    gw.subscribe("customer_group.*", lambda event: seen.append(event.type), name="test")
    _, secret = keys.create_key(gw.engine, "env", ["write"])

    with TestClient(app, headers=bearer(secret)) as client:
        assert gw.relay.running
        assert client.post("/admin/customer-groups", json={"name": "VIP"}).status_code == 200
        assert gw.drain(timeout=20)
        assert seen == ["customer_group.created"]

    assert not gw.relay.running
