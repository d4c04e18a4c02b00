"""The Admin REST API (Medusa v2 wire shapes): translates HTTP to service calls, nothing more."""

from groupwire.api.app import create_app

__all__ = ["create_app"]
