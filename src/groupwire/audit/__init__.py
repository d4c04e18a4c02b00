"""Audit export of a group's or a customer's event log (CSV or JSON lines); docs/use-cases.md."""

from __future__ import annotations

from groupwire.audit.export import COLUMNS, FORMATS, export_lines, row_of, trail

__all__ = ["COLUMNS", "FORMATS", "export_lines", "row_of", "trail"]
