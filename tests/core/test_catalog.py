"""The catalog rejects inconsistent queues at construction; derived names are pure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.catalog.naming import (
    autoscaler_name,
    k8s_name,
    priority_list_key,
    priority_list_keys,
    worker_deployment_name,
    worker_pdb_name,
)
from service.catalog.queues import CATALOG, Autoscaling, QueueCatalog, QueueSpec
from service.errors import CatalogError


def spec(**overrides: object) -> QueueSpec:
    values: dict[str, object] = {"name": "q", "exchange": "ex", "routing_key": "q"}
    values.update(overrides)
    return QueueSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Bad-Name"}, "queue name"),
        ({"name": ""}, "queue name"),
        ({"routing_key": "has space"}, "routing key"),
        ({"soft_time_limit": 60, "hard_time_limit": 60}, "must exceed"),
        ({"soft_time_limit": 0}, "soft_time_limit"),
        ({"concurrency": 0}, "concurrency"),
        ({"task_patterns": ("bad pattern!",)}, "task pattern"),
        ({"max_wait_seconds": 0}, "max_wait_seconds"),
    ],
)
def test_bad_queue_is_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        spec(**overrides)


def test_min_above_max_replicas_is_rejected() -> None:
    with pytest.raises(CatalogError, match=r"min_replicas \(5\) > max_replicas \(2\)"):
        Autoscaling(min_replicas=5, max_replicas=2)


def test_duplicate_names_and_bindings_are_rejected() -> None:
    with pytest.raises(CatalogError, match="duplicate queue name 'q'"):
        QueueCatalog((spec(), spec(routing_key="other")), default_queue="q")
    with pytest.raises(CatalogError, match="binding"):
        QueueCatalog((spec(), spec(name="r")), default_queue="q")
    with pytest.raises(CatalogError, match="default queue"):
        QueueCatalog((spec(),), default_queue="missing")


def test_a_pattern_belongs_to_one_queue() -> None:
    with pytest.raises(CatalogError, match="claimed by"):
        QueueCatalog(
            (spec(task_patterns=("a.*",)), spec(name="r", routing_key="r", task_patterns=("a.*",))),
            default_queue="q",
        )


def test_catalog_covers_the_seed_queues() -> None:
    assert set(CATALOG.names) >= {
        "default",
        "high_priority",
        "low_priority",
        "email",
        "reports",
        "analytics",
        "heavy_processing",
    }
    with pytest.raises(CatalogError, match="unknown queue 'nope'; known queues: default"):
        CATALOG.get("nope")


@pytest.mark.parametrize(
    ("queue", "expected"),
    [("default", "celery-worker-default"), ("high_priority", "celery-worker-high-priority")],
)
def test_deployment_names(queue: str, expected: str) -> None:
    assert worker_deployment_name(queue) == expected
    assert "_" not in k8s_name(queue)


@pytest.mark.parametrize(
    ("priority", "sep", "expected"),
    [(0, "\x06\x16", "email"), (3, "\x06\x16", "email\x06\x163"), (9, ":", "email:9")],
)
def test_priority_list_key(priority: int, sep: str, expected: str) -> None:
    assert priority_list_key("email", priority, sep) == expected


def test_priority_list_keys_most_urgent_first() -> None:
    assert priority_list_keys("q", (9, 0, 3), ":") == ["q", "q:3", "q:9"]


@pytest.mark.parametrize(
    ("delivery_info", "queue"),
    [
        ({"exchange": "", "routing_key": "email"}, "email"),
        ({"exchange": "priority", "routing_key": "high"}, "high_priority"),
        ({"exchange": "priority", "routing_key": "low"}, "low_priority"),
        ({"exchange": "", "routing_key": "high"}, "default"),
        (None, "default"),
    ],
)
def test_queue_for_delivery(delivery_info: dict[str, str] | None, queue: str) -> None:
    from service.catalog.routing import queue_for_delivery

    assert queue_for_delivery(delivery_info) == queue


def test_ports_have_one_home() -> None:
    # Given every module of the service, the infra and the dashboards, then only
    # service/catalog/naming.py types the fleet's ports; the rest import them.
    root = Path(__file__).resolve().parents[2]
    port = re.compile(r"\b(9808|9809|5555)\b")
    offenders = [
        str(path.relative_to(root))
        for package in ("service", "infra", "dashboards", "policy")
        for path in sorted((root / package).rglob("*.py"))
        if path.name != "naming.py" and port.search(path.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize("queue", CATALOG.names)
def test_a_pools_objects_share_its_deployment_name(queue: str) -> None:
    name = worker_deployment_name(queue)
    assert worker_pdb_name(queue) == autoscaler_name(queue) == name
