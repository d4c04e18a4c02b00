"""Signatures are the Standard Webhooks ones: the ``standardwebhooks`` library agrees."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from groupwire.webhooks.signing import Signer, generate_secret, secret_key, sign


def test_a_secret_is_whsec_and_base64_of_at_least_24_random_bytes() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24


@given(
    msg_id=st.text(min_size=1, max_size=40).filter(lambda s: "." not in s),
    timestamp=st.integers(min_value=0, max_value=2**33),
    body=st.text(max_size=500),
)
def test_our_signature_is_the_librarys(msg_id: str, timestamp: int, body: str) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    expected = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body)
    assert sign(secret, msg_id, timestamp, body.encode()) == expected


def test_the_library_verifies_our_headers() -> None:
    secret = generate_secret()
    body = b'{"type":"customer_group.customer_added","data":{"plan":"Paid"}}'
    headers = Signer([secret]).headers("msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == {
        "type": "customer_group.customer_added",
        "data": {"plan": "Paid"},
    }


def test_the_library_rejects_a_tampered_body() -> None:
    secret = generate_secret()
    headers = Signer([secret]).headers("msg_1", int(time.time()), b'{"plan":"Trial"}')
    with pytest.raises(WebhookVerificationError, match="signature"):
        Webhook(secret).verify(b'{"plan":"Paid"}', headers)


def test_the_library_rejects_an_old_timestamp() -> None:
    secret = generate_secret()
    body = b"{}"
    headers = Signer([secret]).headers("msg_1", int(time.time()) - 10 * 60, body)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, headers)


def test_the_library_rejects_another_endpoints_secret() -> None:
    body = b"{}"
    headers = Signer([generate_secret()]).headers("msg_1", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)


def test_two_secrets_give_two_signatures_each_verifying_alone() -> None:
    old, new = generate_secret(), generate_secret()
    body = b'{"a":1}'
    headers = Signer([new, old]).headers("msg_2", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


@pytest.mark.parametrize("bad", ["whsec_", "whsec_!!!", "whsec_abc$"])
def test_a_malformed_secret_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        secret_key(bad)
