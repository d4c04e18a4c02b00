"""Standard Webhooks signatures: secrets, the signed headers, and their verification.

A secret is ``whsec_`` followed by the base64 of random bytes. The signature of a message is
``v1,`` + base64(HMAC-SHA256(secret bytes, "{webhook-id}.{webhook-timestamp}.{body}")); the
``webhook-signature`` header lists one such signature per valid secret, separated by spaces,
so a receiver keeps working while a rotated secret's grace period lasts. This matches the
``standardwebhooks`` library (the tests check it against that library).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def generate_secret() -> str:
    """A new endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_...`` secret stands for."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("a webhook secret must be whsec_ followed by base64") from error
    if not key:
        raise ValueError("a webhook secret cannot be empty")
    return key


class Signer:
    """Signs messages for one endpoint with each of its currently valid secrets."""

    def __init__(self, secrets_: Sequence[str]) -> None:
        if not secrets_:
            raise ValueError("a signer needs at least one secret")
        self._macs = [hmac.new(secret_key(s), digestmod=hashlib.sha256) for s in secrets_]

    def signature(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The ``webhook-signature`` header value."""
        prefix = f"{msg_id}.{timestamp}.".encode()
        parts = []
        for base in self._macs:
            mac = base.copy()
            mac.update(prefix)
            mac.update(body)
            parts.append("v1," + base64.b64encode(mac.digest()).decode("ascii"))
        return " ".join(parts)

    def headers(self, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The three Standard Webhooks headers for one delivery attempt."""
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.signature(msg_id, timestamp, body),
        }


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,...`` signature of one message with one secret."""
    return Signer([secret]).signature(msg_id, timestamp, body)
