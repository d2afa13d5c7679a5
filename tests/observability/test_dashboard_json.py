"""Shape of the committed dashboards: importable by hand, one data source variable everywhere,
a queue variable covering the catalog, and the expression list the integration test runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dashboards import OVERVIEW_UID, QUEUE_UID
from dashboards.expressions import all_panel_expressions, substitute
from service.catalog.queues import CATALOG

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_FILES = sorted((REPO / "dashboards").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def panels(document: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in document["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def variable(document: dict[str, Any], name: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [v for v in document["templating"]["list"] if v["name"] == name]
    assert len(matches) == 1, f"{document['uid']}: expected one variable {name!r}"
    return matches[0]


@pytest.fixture(params=DASHBOARD_FILES, ids=lambda p: p.name)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    path: Path = request.param
    return load(path)


def test_both_dashboards_are_committed_under_their_uid() -> None:
    assert {p.name for p in DASHBOARD_FILES} == {f"{OVERVIEW_UID}.json", f"{QUEUE_UID}.json"}
    for path in DASHBOARD_FILES:
        assert load(path)["uid"] == path.stem


def test_inputs_declare_the_prometheus_datasource(dashboard: dict[str, Any]) -> None:
    inputs = {i["name"]: i for i in dashboard["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["type"] == "datasource"
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"


def test_datasource_variable_is_prometheus(dashboard: dict[str, Any]) -> None:
    ds = variable(dashboard, "datasource")
    assert ds["type"] == "datasource"
    assert ds["query"] == "prometheus"


def test_every_panel_and_query_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panel_ids_are_unique_and_queries_have_ref_ids(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        ref_ids = [t["refId"] for t in panel.get("targets", [])]
        assert all(ref_ids) and len(ref_ids) == len(set(ref_ids)), panel["title"]
        if panel["type"] != "row":
            assert ref_ids, f"{panel['title']} queries nothing"


def test_queue_variable_covers_the_catalog() -> None:
    queue = variable(load(REPO / "dashboards" / f"{QUEUE_UID}.json"), "queue")
    assert queue["query"].split(",") == list(CATALOG.names)
    assert [o["value"] for o in queue["options"]] == list(CATALOG.names)
    assert queue["current"]["value"] == CATALOG.default_queue


def test_queue_dashboard_queries_are_scoped_to_the_queue() -> None:
    document = load(REPO / "dashboards" / f"{QUEUE_UID}.json")
    for panel in panels(document):
        for target in panel.get("targets", []):
            assert "$queue" in target["expr"], f"{panel['title']}: not filtered by $queue"


def test_panel_expressions_cover_every_query_target() -> None:
    expressions = all_panel_expressions()
    targets = [
        (document["title"], panel["title"], target["expr"])
        for document in map(load, DASHBOARD_FILES)
        for panel in panels(document)
        for target in panel.get("targets", [])
    ]
    assert len(expressions) == len(targets)
    assert sorted(e for _, e, _ in expressions) == sorted(substitute(e) for _, _, e in targets)


def test_panel_expressions_contract() -> None:
    titles = {load(p)["title"] for p in DASHBOARD_FILES}
    for title, expr, needs_ksm in all_panel_expressions():
        assert isinstance(title, str) and isinstance(expr, str) and isinstance(needs_ksm, bool)
        assert title.split("/", 1)[0] in titles
        # Only label_replace's capture-group references ($1, ${1}) may keep a dollar sign.
        assert not re.search(r"\$(?!\{?\d)", expr), f"{title}: unsubstituted variable in {expr}"
        assert needs_ksm == ("kube_" in expr), title
    assert any(needs for _, _, needs in all_panel_expressions())
    assert not all(needs for _, _, needs in all_panel_expressions())


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('rate(x{queue="$queue"}[$__rate_interval])', 'rate(x{queue="default"}[1m])'),
        ('x{queue="${queue}"}', 'x{queue="default"}'),
        ('label_replace(x, "q", "${1}_${2}", "q", "(.+)-(.+)")', None),
        ('label_replace(x, "q", "$1", "l", "p-(.+)")', None),
    ],
)
def test_substitute(expr: str, expected: str | None) -> None:
    assert substitute(expr) == (expr if expected is None else expected)


def test_substitute_rejects_unknown_variables() -> None:
    with pytest.raises(KeyError):
        substitute('x{job="$job"}')
