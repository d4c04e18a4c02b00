"""Groupwire for a running Medusa store: an adapter that knows the core, imported by nothing
in it.

``capture`` turns every committed change to Medusa's customer tables, whoever made it, into
Groupwire's copy and events (PostgreSQL logical decoding, ``pgoutput``); see docs/medusa.md.
"""

from __future__ import annotations

from groupwire.medusa.capture import CaptureError, CaptureOptions, CaptureStatus, MedusaCapture

__all__ = ["CaptureError", "CaptureOptions", "CaptureStatus", "MedusaCapture"]
