"""Write the generated dashboards and alert rules: `python -m dashboards.generate [--out DIR]`.

Output is deterministic (sorted JSON keys, stable rule order, trailing newline) so that
`make generate && git diff --exit-code` detects drift."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dashboards.alert_tests import TESTS_FILE, render_threshold_tests
from dashboards.alerts import RULES_FILE, render_rules
from dashboards.expressions import dashboards_json

REPO_ROOT = Path(__file__).resolve().parent.parent


def render_dashboard(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """Relative path -> file content, for every generated file."""
    files = {f"dashboards/{d['uid']}.json": render_dashboard(d) for d in dashboards_json()}
    files[RULES_FILE] = render_rules()
    files[TESTS_FILE] = render_threshold_tests()
    return files


def write_all(root: Path) -> list[Path]:
    written = []
    for relative, content in render_all().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.generate", description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT, help="root to write into (default: the repo)"
    )
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
