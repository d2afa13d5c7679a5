"""Read the committed alert rule files and dashboards at run time (pure, no Pulumi)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from infra.config_reader import InfraConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
ALERTS_DIR = REPO_ROOT / "alerts"
DASHBOARDS_DIR = REPO_ROOT / "dashboards"


def load_rule_groups(directory: Path = ALERTS_DIR) -> list[dict[str, Any]]:
    """Every group of every `*.yaml` rule file in `directory` (not its tests/), in file order.
    An empty or missing directory yields no groups: the PrometheusRule is then skipped."""
    groups: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.y*ml")) if directory.is_dir() else []:
        doc = yaml.safe_load(path.read_text()) or {}
        file_groups = doc.get("groups") if isinstance(doc, dict) else None
        if not isinstance(file_groups, list):
            raise InfraConfigError(f"{path}: a Prometheus rule file needs a `groups:` list")
        for group in file_groups:
            if not isinstance(group, dict) or "name" not in group or "rules" not in group:
                raise InfraConfigError(f"{path}: every group needs `name` and `rules`")
            name = str(group["name"])
            if name in seen:
                raise InfraConfigError(f"{path}: group {name!r} already defined in {seen[name]}")
            seen[name] = path.name
            groups.append(group)
    return groups


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[str, str]:
    """`{file stem: JSON text}` for every `*.json` dashboard; the text is kept verbatim so the
    ConfigMap matches the committed, drift-checked file byte for byte."""
    result: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        text = path.read_text()
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise InfraConfigError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or "panels" not in doc:
            raise InfraConfigError(f"{path}: not a Grafana dashboard (no `panels`)")
        result[path.stem] = text
    return result
