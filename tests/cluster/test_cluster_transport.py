"""The broker transport on a real Redis Cluster: workers and producers on a
`rediscluster://` URL, every catalog queue on its own slot."""

from __future__ import annotations

from typing import Any

import pytest
from cluster_fixtures import cluster_app, cluster_worker_env, runs
from cluster_harness import RedisClusterUnderTest
from harness import wait_until
from redis.cluster import RedisCluster

from service.catalog.naming import priority_list_key, queue_hash_tag
from service.catalog.queues import CATALOG

RECORD = "service.tasks.diagnostics.record"


def test_tasks_on_every_catalog_queue_run_and_the_queues_spread_over_primaries(
    redis_cluster: RedisClusterUnderTest,
    cluster_client: RedisCluster,
    redis_url: str,
    worker_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    primaries = {
        cluster_client.get_node_from_key(queue_hash_tag(name)).name for name in CATALOG.names
    }
    assert len(primaries) >= 2, "the catalog's queues all hash to one primary"
    # One worker consuming every queue (several slots): it pops them in turn
    worker_factory(
        ",".join(CATALOG.names),
        broker_url=redis_cluster.url,
        env=cluster_worker_env(redis_url),
        concurrency=4,
    )
    app = cluster_app(redis_cluster.url, monkeypatch)
    expected: dict[str, int] = {}
    for name in CATALOG.names:
        for i in range(5):
            item = f"{name}-{i}"
            app.send_task(RECORD, args=["every-queue", item], queue=name, priority=(i * 3) % 10)
            expected[item] = 1
    wait_until(
        lambda: runs(cluster_client, "every-queue") == expected,
        60,
        message="every task on every queue ran once",
    )
    for name in CATALOG.names:
        assert cluster_client.llen(priority_list_key(name, 0, cluster=True)) == 0


def test_workers_started_as_shipped_with_mingle_run_tasks(
    redis_cluster: RedisClusterUnderTest,
    cluster_client: RedisCluster,
    redis_url: str,
    worker_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mingle (on by default in Celery) broadcasts at start and reads the replies from a
    queue in another slot: the worker polls both, then its task queue alone."""
    env = cluster_worker_env(redis_url)
    for _ in range(2):
        worker_factory("email", broker_url=redis_cluster.url, env=env, mingle=True)
    app = cluster_app(redis_cluster.url, monkeypatch)
    for i in range(20):
        app.send_task(RECORD, args=["mingle", str(i)], queue="email")
    expected = {str(i): 1 for i in range(20)}
    wait_until(lambda: runs(cluster_client, "mingle") == expected, 60, message="all ran once")
