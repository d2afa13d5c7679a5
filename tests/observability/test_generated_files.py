"""The committed dashboards and rule files are exactly what the generator writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dashboards.generate import render_all

REPO = Path(__file__).resolve().parents[2]


def test_generator_output_matches_committed_files(tmp_path: Path) -> None:
    # Given the generator run as `make generate` runs it, into an empty directory
    subprocess.run(
        [sys.executable, "-m", "dashboards.generate", "--out", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    # Then every generated file is committed byte for byte
    assert generated, "the generator wrote nothing"
    for relative in generated:
        committed = REPO / relative
        assert committed.exists(), f"{relative} is not committed: run make generate"
        assert committed.read_bytes() == (tmp_path / relative).read_bytes(), (
            f"{relative} drifted from the code: run make generate and commit"
        )


def test_no_stale_generated_files() -> None:
    # A dashboard or rule file left over from a renamed generator output would still ship.
    expected = set(render_all())
    committed = {
        str(p.relative_to(REPO))
        for pattern in ("dashboards/*.json", "alerts/*.yaml")
        for p in REPO.glob(pattern)
    }
    assert committed == expected


def test_output_is_deterministic_with_trailing_newline() -> None:
    first, second = render_all(), render_all()
    assert first == second
    for relative, content in first.items():
        assert content.endswith("\n") and not content.endswith("\n\n"), relative
