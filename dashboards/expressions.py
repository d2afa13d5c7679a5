"""Every PromQL expression of the generated dashboards, runnable as-is against Prometheus."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from dashboards import overview, queue
from dashboards.panels import to_json
from service.catalog.queues import CATALOG

# What Grafana would put in place of its variables, for running the queries outside Grafana.
SUBSTITUTIONS: dict[str, str] = {
    "queue": CATALOG.default_queue,
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
}

# $name, ${name} and ${name:format}; `$1`/`${1}` (label_replace groups) never match a name here.
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)(?::\w+)?\}|([A-Za-z_]\w*))")


def substitute(expr: str, values: dict[str, str] | None = None) -> str:
    """Replace Grafana variables with concrete values; unknown variables raise KeyError."""
    table = SUBSTITUTIONS if values is None else values

    def replace(match: re.Match[str]) -> str:
        return table[match.group(1) or match.group(2)]

    return _VARIABLE.sub(replace, expr)


def dashboards_json() -> list[dict[str, Any]]:
    """The generated dashboards, in a stable order."""
    return [to_json(overview.build()), to_json(queue.build())]


def _panels(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in document.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def all_panel_expressions() -> list[tuple[str, str, bool]]:
    """(`<dashboard title>/<panel title>`, expr with variables substituted,
    needs_kube_state_metrics) for every query target of every panel, in dashboard order.

    A panel with several targets yields one tuple per target (same title). The third item is
    True when the expression reads a kube-state-metrics series (`kube_*`), which returns no
    data where kube-state-metrics is not scraped.
    """
    result: list[tuple[str, str, bool]] = []
    for document in dashboards_json():
        for panel in _panels(document):
            for target in panel.get("targets", []):
                expr = substitute(target["expr"])
                title = f"{document['title']}/{substitute(panel['title'])}"
                result.append((title, expr, "kube_" in expr))
    return result
