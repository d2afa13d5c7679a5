"""The README's move from one Redis to a cluster, end to end: tasks queued on a single
redis-server (one of them a countdown a worker holds) with its workers running, producers
switched to the cluster URL, workers of the cluster started beside the old ones, the old
workers stopped once the old Redis shows every queue at 0 and nothing held. Every task runs
exactly once, none is left behind."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from cluster_fixtures import cluster_app, cluster_worker_env, runs
from cluster_harness import RedisClusterUnderTest
from harness import wait_until
from redis.cluster import RedisCluster

from service.catalog.naming import priority_list_keys, unacked_key
from service.exporter.queue_stats import read_queue_stats

RECORD = "service.tasks.diagnostics.record"
QUEUE = "default"
OLD, NEW = 300, 200  # tasks published to the single Redis, then to the cluster


def drained(client: Any) -> bool:
    """What the README has operators wait for on the old Redis: the exporter's queue length
    0 for every queue and the queue's unacked records empty (no consumer holds anything)."""
    lengths = {name: stats.length for name, stats in read_queue_stats(client).items()}
    return not any(lengths.values()) and client.hlen(unacked_key(QUEUE)) == 0


def test_draining_one_redis_into_a_cluster_runs_every_task_once(
    redis_factory: Any,
    redis_cluster: RedisClusterUnderTest,
    cluster_client: RedisCluster,
    redis_url: str,
    worker_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given one Redis with its worker running and a backlog queued on it
    single = redis_factory()
    old_client = redis.Redis.from_url(single.url)
    old_worker = worker_factory(QUEUE, broker_url=single.url)
    old_producer = cluster_app(single.url, monkeypatch)  # the same app, on the old URL
    for i in range(OLD):
        old_producer.send_task(RECORD, args=["move", f"old-{i}", 0.03], queue=QUEUE)
    # a countdown the old worker holds (not in a list) until it is due: the drain waits for it
    old_producer.send_task(RECORD, args=["move", "old-eta"], queue=QUEUE, countdown=8)
    # When the producers switch to the cluster URL (new tasks queue there) ...
    new_producer = cluster_app(redis_cluster.url, monkeypatch)
    for i in range(NEW):
        new_producer.send_task(RECORD, args=["move", f"new-{i}", 0.01], queue=QUEUE)
    # ... the workers of the cluster start beside the old ones ...
    assert not drained(old_client), "the old Redis must still hold work when they start"
    worker_factory(QUEUE, broker_url=redis_cluster.url, env=cluster_worker_env(redis_url))
    # ... and the old workers stop once the old Redis is drained
    wait_until(lambda: drained(old_client), 60, interval=0.2, message="old Redis drained")
    old_worker.stop()
    assert old_worker.process.returncode is not None
    # Then every task ran exactly once, on the side it was published to, and none is left
    wait_until(lambda: len(runs(cluster_client, "move")) == NEW, 60, message="new tasks ran")
    ran_old, ran_new = runs(old_client, "move"), runs(cluster_client, "move")
    assert ran_old == {**{f"old-{i}": 1 for i in range(OLD)}, "old-eta": 1}
    assert ran_new == {f"new-{i}": 1 for i in range(NEW)}
    assert drained(old_client)
    assert sum(int(old_client.llen(key)) for key in priority_list_keys(QUEUE)) == 0
    wait_until(lambda: cluster_client.hlen(unacked_key(QUEUE)) == 0, 30, message="acked")
    old_client.close()
