"""The cluster-wide rate limiter and the queue exporter on a real Redis Cluster."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from cluster_fixtures import dead_letter
from cluster_harness import RedisClusterUnderTest
from exporter.exporter_harness import run_exporter
from harness import free_port
from redis.cluster import RedisCluster
from redis.crc import key_slot

from service.catalog.naming import SENT_AT_HEADER, priority_list_key
from service.catalog.queues import CATALOG
from service.config.redis_client import connect
from service.dlq.writer import DLQWriter
from service.exporter.queue_stats import read_queue_stats
from service.tasks.ratelimit import ClusterRateLimiter, limit_keys


def test_rate_limit_holds_across_clients_on_a_cluster(
    redis_cluster: RedisClusterUnderTest, cluster_client: RedisCluster
) -> None:
    assert len({key_slot(k.encode()) for k in limit_keys("external-api")}) == 1
    grants: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 2.5

    def caller() -> None:
        # Each thread its own client, as each worker process has its own.
        limiter = ClusterRateLimiter(connect(redis_cluster.url), "external-api", 10, 1.0)
        while time.monotonic() < deadline:
            decision = limiter.try_acquire()
            if decision.allowed:
                with lock:
                    grants.append(decision.at)
            else:
                time.sleep(min(decision.retry_after, 0.05))

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grants.sort()
    # Server clock: no 1 s window ever holds more than 10 grants, and the budget was used.
    most = max(sum(1 for t in grants if start <= t < start + 1.0) for start in grants)
    assert most <= 10
    assert len(grants) >= 20


def _message(task_id: str, sent_at: float) -> bytes:
    return json.dumps(
        {"body": "", "headers": {"id": task_id, SENT_AT_HEADER: sent_at}, "properties": {}}
    ).encode()


def test_exporter_counts_every_queue_on_every_shard(
    redis_cluster: RedisClusterUnderTest, cluster_client: RedisCluster, tmp_path: Path
) -> None:
    now = time.time()
    expected: dict[str, int] = {}
    for n, spec in enumerate(CATALOG):
        steps = (0, 3, 6, 9) if spec.supports_priority else (0,)
        for step in steps:
            key = priority_list_key(spec.name, step, cluster=True)
            for i in range(n + 1):
                cluster_client.lpush(key, _message(f"{spec.name}-{step}-{i}", now - 60 - n))
        expected[spec.name] = (n + 1) * len(steps)
    store = DLQWriter(cluster_client)
    store.add(*dead_letter("email", "dead-1"))
    store.add(*dead_letter("email", "dead-2"))
    # In process: one script per slot, the same numbers as on one Redis
    stats = read_queue_stats(cluster_client)
    assert {name: s.length for name, s in stats.items()} == expected
    assert stats["email"].dlq_length == 2
    # The real exporter pointed at the cluster URL
    with run_exporter(redis_cluster.url, tmp_path) as exporter:
        scrape = exporter.scrape()
    assert scrape.value("celery_exporter_up") == 1
    assert scrape.by_queue("celery_queue_length") == {k: float(v) for k, v in expected.items()}
    assert scrape.by_queue("celery_dlq_length")["email"] == 2
    ages = scrape.by_queue("celery_queue_oldest_task_age_seconds")
    assert all(ages[spec.name] >= 60 for spec in CATALOG)


def test_exporter_on_an_unreachable_cluster_stays_up_and_reports_it(tmp_path: Path) -> None:
    with run_exporter(f"rediscluster://127.0.0.1:{free_port()}", tmp_path) as exporter:
        scrape = exporter.scrape()
        assert scrape.value("celery_exporter_up") == 0
        assert scrape.errors_total() >= 1
        assert exporter.process.poll() is None
