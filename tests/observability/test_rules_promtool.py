"""promtool on the rule files (what `make rules` runs) and on every dashboard expression."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from dashboards.expressions import all_panel_expressions

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules(promtool: str) -> None:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "alerts").glob("*.yaml"))
    result = run(promtool, "check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules(promtool: str) -> None:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "alerts" / "tests").glob("*.yaml"))
    assert files
    result = run(promtool, "test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_expressions_parse(promtool: str, tmp_path: Path) -> None:
    # Given every panel query as a recording rule, then Prometheus' own parser accepts it.
    rules = [
        {"record": f"dashboard:expr_{index}", "expr": expr}
        for index, (_, expr, _) in enumerate(all_panel_expressions())
    ]
    path = tmp_path / "dashboard-expressions.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
