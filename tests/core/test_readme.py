"""The README's catalog table is the catalog (regenerate with `fleet queues --markdown`)."""

from __future__ import annotations

from pathlib import Path

from service.cli import catalog_markdown


def test_readme_catalog_table_matches_the_catalog() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert catalog_markdown() in readme, "README table drifted: paste `fleet queues --markdown`"
