"""Small PromQL builders shared by the dashboards and the alert rules.

Exporter series are reduced with `max by (queue)`: during an exporter rollout two pods may
report the same queue for a moment, and summing them would double the backlog."""

from __future__ import annotations

from collections.abc import Sequence

from service.catalog.naming import worker_deployment_name
from service.catalog.queues import CATALOG

# Grafana's own variable; `dashboards.expressions` substitutes it for the integration test.
RATE_INTERVAL = "$__rate_interval"

# KSM names worker objects `celery-worker-<queue with "_" -> "-">` (service.catalog.naming). In the
# infra's KEDA mode the HPA is KEDA's own, named `keda-hpa-<ScaledObject name>`.
WORKER_PREFIX = worker_deployment_name("")
KEDA_HPA = "(?:keda-hpa-)?"
WORKER_OBJECT = f"{KEDA_HPA}{WORKER_PREFIX}"


def selector(metric: str, matchers: str = "") -> str:
    return f"{metric}{{{matchers}}}" if matchers else metric


def _by(labels: Sequence[str]) -> str:
    return f"by ({', '.join(labels)}) " if labels else ""


def rate_sum(
    metric: str,
    by: Sequence[str] = ("queue",),
    matchers: str = "",
    window: str = RATE_INTERVAL,
    func: str = "rate",
) -> str:
    """sum by (<by>) (<func>(<metric>{<matchers>}[<window>])), func rate or increase."""
    return f"sum {_by(by)}({func}({selector(metric, matchers)}[{window}]))"


def ratio(
    numerator: str,
    denominator: str,
    by: Sequence[str] = ("queue",),
    matchers: str = "",
    window: str = RATE_INTERVAL,
) -> str:
    """Rate of one counter over the rate of another, both summed by `by`."""
    return (
        f"{rate_sum(numerator, by, matchers, window)}\n"
        f"  / {rate_sum(denominator, by, matchers, window)}"
    )


def quantile(
    q: float,
    histogram: str,
    by: Sequence[str] = ("queue",),
    matchers: str = "",
    window: str = RATE_INTERVAL,
) -> str:
    """histogram_quantile over the `_bucket` series of `histogram`, keeping `by` labels."""
    buckets = rate_sum(f"{histogram}_bucket", (*by, "le"), matchers, window)
    return f"histogram_quantile({q:g}, {buckets})"


def exporter_gauge(metric: str, matchers: str = "", by: Sequence[str] = ("queue",)) -> str:
    """One series per queue from the exporter (see the module docstring).

    The one spelling of this reduction: the infra's KEDA trigger (`by=()`, one queue
    selected by its matchers) and prometheus-adapter rule (Go-template placeholders for
    `metric` and `matchers`) call it too, so dashboards, alerts and scaling read one backlog."""
    if not by:
        return f"max({selector(metric, matchers)})"
    return f"max {_by(by)}({selector(metric, matchers)})"


def _max_underscores() -> int:
    return max(1, *(name.count("_") for name in CATALOG.names))


def kube_by_queue(metric: str, object_label: str) -> str:
    """A kube-state-metrics series of the worker objects with a `queue` label added.

    KSM only knows `celery-worker-high-priority`; the queue label is recovered by stripping
    the prefix (and KEDA's) and turning each "-" back into "_" (queue names never contain
    "-", so this inverts `service.catalog.naming.k8s_name`). PromQL has no replace-all, so the
    replacement is nested once per underscore the catalog's longest-underscored name needs.
    """
    expr = (
        f'label_replace({metric}{{{object_label}=~"{WORKER_OBJECT}.+"}}, '
        f'"queue", "$1", "{object_label}", "{WORKER_OBJECT}(.+)")'
    )
    for _ in range(_max_underscores()):
        expr = f'label_replace({expr}, "queue", "${{1}}_${{2}}", "queue", "(.+)-(.+)")'
    return f"max by (queue) ({expr})"


def only_queue(expr: str, queue: str) -> str:
    """Keep the series of `expr` whose `queue` label is `queue` (for derived labels, where a
    selector matcher cannot be used)."""
    return f'{expr}\n  and on (queue) label_replace(vector(1), "queue", "{queue}", "", "")'
