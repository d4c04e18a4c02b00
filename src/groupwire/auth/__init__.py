"""API keys: who may call the Admin API, with which scopes."""

from groupwire.auth.keys import (
    SCOPES,
    ApiKey,
    authenticate,
    create_key,
    grants,
    list_keys,
    revoke_key,
)

__all__ = ["SCOPES", "ApiKey", "authenticate", "create_key", "grants", "list_keys", "revoke_key"]
