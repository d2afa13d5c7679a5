"""Alert rule files and dashboards are read at run time; whatever exists is deployed."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboards.alerts import render_rules
from infra.assets import (
    ALERTS_DIR,
    DASHBOARDS_DIR,
    GENERATED_RULES,
    load_dashboards,
    load_rule_groups,
    stack_rule_groups,
)
from infra.config_reader import InfraConfigError
from infra.names import dashboard_configmap_name
from service.catalog.queues import CATALOG


def test_real_rule_files_load_as_groups() -> None:
    assert sorted(ALERTS_DIR.glob("*.yaml")), "alerts/*.yaml are committed"
    groups = load_rule_groups()
    assert groups and all(g["rules"] for g in groups)


def test_an_empty_or_missing_alerts_dir_yields_no_groups(tmp_path: Path) -> None:
    assert load_rule_groups(tmp_path) == []
    assert load_rule_groups(tmp_path / "missing") == []


def test_rule_files_are_checked(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("groups:\n- name: g\n  rules: []\n")
    (tmp_path / "b.yaml").write_text("groups:\n- name: g\n  rules: []\n")
    with pytest.raises(InfraConfigError, match="already defined"):
        load_rule_groups(tmp_path)
    (tmp_path / "b.yaml").write_text("rules: []\n")
    with pytest.raises(InfraConfigError, match="groups"):
        load_rule_groups(tmp_path)


def test_a_stack_deploys_its_own_render_plus_hand_written_rule_files(tmp_path: Path) -> None:
    # Given a stale generated file and a hand-written one
    (tmp_path / GENERATED_RULES).write_text("groups:\n- name: stale\n  rules: []\n")
    (tmp_path / "team.yaml").write_text("groups:\n- name: team\n  rules: []\n")
    # Then the stack gets its own render instead of the stale file, and the team's rules
    groups = stack_rule_groups(CATALOG, tmp_path)
    names = [g["name"] for g in groups]
    assert "stale" not in names and "team" in names
    rendered = [g["name"] for g in load_rule_groups(tmp_path, generated=render_rules(CATALOG))]
    assert names == rendered and "celery-fleet.queues" in names


def test_real_dashboards_load_verbatim() -> None:
    dashboards = load_dashboards()
    for stem, text in dashboards.items():
        assert (DASHBOARDS_DIR / f"{stem}.json").read_text() == text


def test_a_broken_dashboard_fails(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InfraConfigError, match=r"x\.json"):
        load_dashboards(tmp_path)


@pytest.mark.parametrize(
    ("stem", "name"),
    [
        ("celery-fleet-overview", "dashboard-celery-fleet-overview"),
        ("Queue_Detail", "dashboard-queue-detail"),
        ("x" * 80, "dashboard-" + "x" * 53),
    ],
)
def test_dashboard_configmap_names_are_dns_labels(stem: str, name: str) -> None:
    assert dashboard_configmap_name(stem) == name


@pytest.mark.parametrize("directory", ["infra", "policy"])
def test_no_module_shadows_the_standard_library(directory: str) -> None:
    # Pulumi runs these directories with runpy, which puts the directory itself first on
    # sys.path: an infra/secrets.py would replace the stdlib `secrets` for every library.
    import pkgutil
    import sys

    root = Path(__file__).resolve().parents[2] / directory
    names = {m.name for m in pkgutil.iter_modules([str(root)])}
    assert names and not names & set(sys.stdlib_module_names)
