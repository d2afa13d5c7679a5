"""Panel helpers: every panel and every query uses the `${datasource}` template variable, so a
dashboard imported by hand or provisioned from a ConfigMap follows the chosen Prometheus."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableOption,
)

DATASOURCE_VAR = "datasource"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VAR + "}")
# The name Grafana's import dialog shows; `__inputs` declares it.
DS_INPUT = "DS_PROMETHEUS"

SCHEMA_WIDTH = 24


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


def _targets(queries: Sequence[Query]) -> list[prometheus.Dataquery]:
    targets: list[prometheus.Dataquery] = []
    for index, query in enumerate(queries):
        target = (
            prometheus.Dataquery()
            .expr(query.expr)
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
        )
        if query.legend:
            target = target.legend_format(query.legend)
        targets.append(target)
    return targets


def graph(
    title: str,
    queries: Sequence[Query],
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    description: str = "",
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .targets(list(_targets(queries)))
        .unit(unit)
        .min(0)
        .span(width)
        .height(height)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if description:
        panel = panel.description(description)
    return panel


def single_stat(
    title: str, expr: str, unit: str = "short", width: int = 4, description: str = ""
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .targets(list(_targets([Query(expr)])))
        .unit(unit)
        .span(width)
        .height(4)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    if description:
        panel = panel.description(description)
    return panel


def datasource_variable() -> dash.DatasourceVariable:
    # On import Grafana replaces ${DS_PROMETHEUS} with the chosen data source; when provisioned
    # as-is, the unknown value makes Grafana fall back to the default Prometheus.
    return (
        dash.DatasourceVariable(DATASOURCE_VAR)
        .label("Data source")
        .type("prometheus")
        .current(selected_option("${" + DS_INPUT + "}"))
    )


def base_dashboard(title: str, uid: str) -> dash.Dashboard:
    """What every fleet dashboard shares: tags, time range, refresh, cursor sync and the
    datasource variable its panels query through."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .tags(["celery", "celery-fleet"])
        .time("now-3h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource_variable())
    )


def selected_option(value: str) -> VariableOption:
    return VariableOption(selected=True, text=value, value=value)


def to_json(builder: dash.Dashboard) -> dict[str, Any]:
    """The importable JSON document: SDK output plus `__inputs`/`__requires`, with panel ids
    numbered in layout order (Grafana needs them unique within a dashboard)."""
    model = builder.build()
    document: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    next_id = 1
    for panel in document.get("panels", []):
        panel["id"] = next_id
        next_id += 1
        for child in panel.get("panels", []):
            child["id"] = next_id
            next_id += 1
    # Grafana's import expects the list form even when there is no annotation query.
    if not document.get("annotations"):
        document["annotations"] = {"list": []}
    panel_types = sorted({p["type"] for p in _all_panels(document) if p["type"] != "row"})
    document["__inputs"] = [
        {
            "description": "Prometheus that scrapes the celery-fleet workers and exporter",
            "label": "Prometheus",
            "name": DS_INPUT,
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
            "type": "datasource",
        }
    ]
    document["__requires"] = [
        {"id": "grafana", "name": "Grafana", "type": "grafana", "version": "11.0.0"},
        {"id": "prometheus", "name": "Prometheus", "type": "datasource", "version": "1.0.0"},
        *({"id": t, "name": t, "type": "panel", "version": ""} for t in panel_types),
    ]
    return document


def _all_panels(document: dict[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in document.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def row(title: str) -> dash.Row:
    # Rows query nothing, but a data source on them keeps "every panel uses ${datasource}"
    # literally true for tools that check it.
    return dash.Row(title).datasource(DATASOURCE)
