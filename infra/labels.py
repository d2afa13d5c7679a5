"""The recommended app.kubernetes.io/* labels, built in one place."""

from __future__ import annotations

from infra.names import PART_OF

QUEUE_LABEL = "celery-fleet/queue"


def app_labels(name: str, instance: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector(labels: dict[str, str]) -> dict[str, str]:
    """The immutable subset used in selectors (managed-by etc. may change over time)."""
    keep = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component")
    return {k: labels[k] for k in keep}


def worker_labels(queue: str, deployment: str) -> dict[str, str]:
    return {**app_labels("celery-worker", deployment, "worker"), QUEUE_LABEL: queue}


FLEET_POD_SELECTOR = {"app.kubernetes.io/part-of": PART_OF}
