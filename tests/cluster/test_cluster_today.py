"""What a cluster serves today, end to end: workers on a single-primary broker write their
dead letters to Redis Cluster (FLEET_DLQ_URL), `fleet dlq` replays them to the broker; and
the DLQ keeps serving after its primary is killed."""

from __future__ import annotations

import json
from typing import Any

import redis
from cluster_fixtures import dead_letter, fleet
from cluster_harness import RedisClusterUnderTest
from harness import wait_until
from redis.cluster import RedisCluster

from service.catalog.queues import CATALOG
from service.config.redis_client import connect
from service.dlq.keys import entries_key
from service.dlq.reader import Filter
from service.dlq.writer import DLQWriter


def test_workers_dead_letter_into_the_cluster_and_replay_reaches_the_broker(
    redis_cluster: RedisClusterUnderTest,
    cluster_client: RedisCluster,
    celery_app: Any,
    redis_client: redis.Redis,
    redis_url: str,
    worker_factory: Any,
) -> None:
    worker_factory("default", env={"FLEET_DLQ_URL": redis_cluster.url})
    sent = celery_app.send_task("service.tasks.diagnostics.fail", args=["boom"])
    dlq = DLQWriter(cluster_client, broker=redis_client)
    wait_until(lambda: dlq.reader.count(Filter()) == 1, 30, message="the entry on the cluster")
    entry = dlq.reader.get("default", sent.id)
    assert entry is not None and entry["reason"] == "non_retryable_error"
    assert redis_client.exists(entries_key("default")) == 0  # not on the broker's Redis
    # `fleet dlq` with the DLQ on the cluster and the broker on one Redis
    done = fleet(redis_url, "dlq", "replay", sent.id, "--json", dlq_url=redis_cluster.url)
    assert json.loads(done.stdout) == {"replayed": 1, "already_gone": 0}, done.stderr
    # The worker runs it again and it fails again: back in the DLQ, on the cluster
    wait_until(lambda: dlq.reader.count(Filter()) == 1, 30, message="re-captured")
    again = dlq.reader.get("default", sent.id)
    assert again is not None


def test_the_dlq_follows_a_killed_primary(private_cluster: RedisClusterUnderTest) -> None:
    client = private_cluster.client()
    store = DLQWriter(client)
    for queue in CATALOG.names:
        for i in range(4):
            store.add(*dead_letter(queue, f"{queue}-{i}", at=1.7e9 + i))
    # Replication is asynchronous: wait until every replica has what its primary acked,
    # so the kill tests failover, not the (documented) loss window.
    for node in client.get_primaries():
        client.execute_command("WAIT", 1, 5000, target_nodes=node)
    private_cluster.kill_primary(entries_key("email"))
    fresh = connect(private_cluster.url)
    after = DLQWriter(fresh)
    assert after.reader.count(Filter()) == 4 * len(CATALOG.names)
    listed = fleet(private_cluster.url, "dlq", "list", "--queue", "email", "--json")
    assert len(json.loads(listed.stdout)) == 4, listed.stderr
    assert after.replay("email", "email-0") is True
    client.close()
    fresh.close()
