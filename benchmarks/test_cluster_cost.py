"""Redis CPU per task with the broker on Redis Cluster, against the same `fleet worker` on
one Redis, side by side in one run (the README's capacity table comes from it).

Both workers are `fleet worker -Q default -c 2` as shipped. The single Redis is private to
its worker; the cluster is 3 primaries + 3 replicas on loopback, and the figure is the CPU
(INFO cpu, user + sys) of the primary that serves the queue's slot over a drain of
BENCH_TASKS no-ops, replication to its replica included. Drains alternate for
BENCH_ROUNDS rounds; the ratio is the median of the per-round ratios.

The cluster primary pays what the single Redis here does not: the replication feed to its
replica and the cluster bus. The target flags a regression of the transport on a cluster
(first measured: 1.55, 113 usec per task on the primary against 78 on one Redis)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import results
import worker_bench as wb
from cluster_harness import RedisClusterUnderTest
from harness import REPO, free_port, wait_until

from service.catalog.naming import priority_list_keys, queue_hash_tag, unacked_key, wake_key

TASKS = int(os.environ.get("BENCH_TASKS", "1500"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "4"))
FLEET = wb.Variant("fleet", fleet=True)
QUEUE = "default"


@dataclass
class ClusterWorker:
    cluster: RedisClusterUnderTest
    client: Any
    primary: redis.Redis
    process: subprocess.Popen[bytes]
    home: Path
    producer: Any
    template: dict[str, Any] | None = None
    list_key: str | None = None


def _start_cluster_worker(tmp: Path) -> ClusterWorker:
    cluster = RedisClusterUnderTest().start()
    home = tmp / f"cluster-{uuid.uuid4().hex[:6]}"
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "CELERY_RESULT_BACKEND"}
    env.update(
        {
            "CELERY_BROKER_URL": cluster.url,
            "PYTHONUNBUFFERED": "1",
            "FLEET_METRICS_DIR": str(home / "metrics"),
            "FLEET_METRICS_PORT": str(free_port()),
            "FLEET_HEARTBEAT_FILE": str(home / "heartbeat" / "worker.beat"),
        }
    )
    args = [sys.executable, "-m", "service", "worker", "-Q", QUEUE, "-c", "2"]
    with open(home / "worker.log", "wb") as log:
        process = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    client = cluster.client()
    primary = cluster.primary_for(queue_hash_tag(QUEUE)).client()
    saved = os.environ.pop("CELERY_RESULT_BACKEND", None)
    try:
        producer = wb._producer(FLEET, cluster.url)
    finally:
        if saved is not None:
            os.environ["CELERY_RESULT_BACKEND"] = saved
    worker = ClusterWorker(cluster, client, primary, process, home, producer)
    lists = priority_list_keys(QUEUE, cluster=True)
    for _ in range(200):
        worker.producer.send_task(FLEET.noop, args=[None])
        for key in lists:
            raw = client.rpop(key)
            if raw is not None:
                worker.template, worker.list_key = json.loads(raw), key
                break
        if worker.template is not None:
            break
    assert worker.template is not None, "could not capture a message template"
    stamp = f"bench:warm:{uuid.uuid4().hex}"
    worker.producer.send_task(FLEET.stamp, args=[stamp])
    wait_until(lambda: client.llen(stamp) > 0, 60, message="cluster worker ready")
    return worker


def _drain_cluster(worker: ClusterWorker, n: int) -> float:
    """Microseconds of the queue primary's CPU per task."""
    assert worker.template is not None and worker.list_key is not None
    messages = [wb._clone(worker.template) for _ in range(n)]
    lists = priority_list_keys(QUEUE, cluster=True)
    before = wb.redis_cpu_seconds(worker.primary)
    with worker.client.pipeline(transaction=False) as pipe:
        for message in messages:
            pipe.lpush(worker.list_key, message)
            pipe.lpush(wake_key(QUEUE), "1")
        pipe.execute()

    def remaining() -> int:
        sizes = [int(worker.client.llen(key)) for key in lists]
        return sum(sizes) + int(worker.client.hlen(unacked_key(QUEUE)))

    wait_until(lambda: remaining() == 0, 300, interval=0.01, message="cluster drain")
    return (wb.redis_cpu_seconds(worker.primary) - before) * 1e6 / n


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ClusterWorker]]:
    tmp = Path(tmp_path_factory.mktemp("cluster-cost"))
    single = wb.start(FLEET, tmp)
    clustered = _start_cluster_worker(tmp)
    try:
        yield single, clustered
    finally:
        wb.stop(single)
        os.killpg(clustered.process.pid, 15)
        clustered.process.wait(30)
        clustered.cluster.stop()


def test_redis_cpu_per_task_on_a_cluster_primary(pair: tuple[Any, ClusterWorker]) -> None:
    single, clustered = pair
    one: list[float] = []
    shard: list[float] = []
    for round_no in range(ROUNDS):
        order = ["single", "cluster"] if round_no % 2 == 0 else ["cluster", "single"]
        for side in order:
            if side == "single":
                one.append(wb.drain(single, TASKS).cpu_usec_per_task)
            else:
                shard.append(_drain_cluster(clustered, TASKS))
            time.sleep(0.5)
    ratio = statistics.median(c / s for c, s in zip(shard, one, strict=True))
    per_primary = 1e6 / statistics.median(shard)
    results.record(
        "C1",
        "Redis CPU per task on the queue's cluster primary / on one Redis (fleet both)",
        ratio,
        "<= 2.0",
        ratio <= 2.0,
        single_usec_per_task=[round(v, 1) for v in one],
        cluster_primary_usec_per_task=[round(v, 1) for v in shard],
        tasks_per_second_per_primary_at_full_cpu=round(per_primary),
    )
    results.check("C1")
