"""The configuration reference in docs/ is the settings object's own, never out of date."""

from __future__ import annotations

from pathlib import Path

from groupwire.cli.config import configuration_reference

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_docs_configuration_md_is_generated_from_the_settings():
    assert DOC.read_text() == configuration_reference(), (
        "docs/configuration.md is stale: run `uv run groupwire config > docs/configuration.md`"
    )
