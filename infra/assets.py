"""The alert rules and dashboards a stack deploys (pure, no Pulumi): the generated rules
rendered from the stack's resolved catalog, plus any hand-written rule files in alerts/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from dashboards.alerts import RULES_FILE, render_rules
from infra.config_reader import InfraConfigError
from service.catalog.queues import QueueCatalog

REPO_ROOT = Path(__file__).resolve().parent.parent
ALERTS_DIR = REPO_ROOT / "alerts"
DASHBOARDS_DIR = REPO_ROOT / "dashboards"


GENERATED_RULES = Path(RULES_FILE).name


def stack_rule_groups(catalog: QueueCatalog, directory: Path = ALERTS_DIR) -> list[dict[str, Any]]:
    """The stack's rules: the generated ones rendered from its resolved `catalog` (instead of
    the committed catalog-default file), then every other rule file in `directory`."""
    return load_rule_groups(directory, generated=render_rules(catalog))


def load_rule_groups(
    directory: Path = ALERTS_DIR, generated: str | None = None
) -> list[dict[str, Any]]:
    """Every group of every `*.yaml` rule file in `directory` (not its tests/), in file order;
    `generated` (rule file text) replaces the committed generated file. An empty or missing
    directory yields no groups: the PrometheusRule is then skipped."""
    groups: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    files = (
        {p.name: p.read_text() for p in sorted(directory.glob("*.y*ml"))}
        if directory.is_dir()
        else {}
    )
    if generated is not None:
        files[GENERATED_RULES] = generated
    for name, text in sorted(files.items()):
        doc = yaml.safe_load(text) or {}
        file_groups = doc.get("groups") if isinstance(doc, dict) else None
        if not isinstance(file_groups, list):
            raise InfraConfigError(f"{name}: a Prometheus rule file needs a `groups:` list")
        for group in file_groups:
            if not isinstance(group, dict) or "name" not in group or "rules" not in group:
                raise InfraConfigError(f"{name}: every group needs `name` and `rules`")
            group_name = str(group["name"])
            if group_name in seen:
                raise InfraConfigError(
                    f"{name}: group {group_name!r} already defined in {seen[group_name]}"
                )
            seen[group_name] = name
            groups.append(group)
    return groups


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[str, str]:
    """`{file stem: JSON text}` for every `*.json` dashboard; the text is kept verbatim so the
    ConfigMap matches the committed, drift-checked file byte for byte. Not rendered per stack
    like the rules: a dashboard carries no per-stack number (only queue names), and rendering
    needs grafana-foundation-sdk, a dev dependency the deploy does not install."""
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
