"""The fuzz of message handling (tests/dlq/test_fuzz.py) on a real Redis Cluster: mutated
real envelopes pushed into a queue's tagged list under a worker on the cluster; every one
ends in the DLQ or runs exactly once, the worker stays up, nothing is left in flight."""

from __future__ import annotations

import json
import time
from typing import Any

from cluster_fixtures import cluster_worker_env
from cluster_harness import RedisClusterUnderTest
from dlq.test_fuzz import EXAMPLES, VISIBILITY, _outcome, _wait_quietly, draw_cases
from fuzz_envelopes import CALLS_KEY, QUEUE
from redis.cluster import RedisCluster

from service.catalog.naming import priority_list_keys, quarantine_key, unacked_key
from service.dlq.reader import DLQReader, Filter


def test_mutated_envelopes_on_a_cluster_end_in_the_dlq_or_run_exactly_once(
    redis_cluster: RedisClusterUnderTest,
    cluster_client: RedisCluster,
    redis_url: str,
    worker_factory: Any,
) -> None:
    batch = draw_cases(EXAMPLES)
    lists = priority_list_keys(QUEUE, cluster=True)
    for case in batch:
        cluster_client.lpush(lists[0], case.raw)
    worker = worker_factory(
        QUEUE, broker_url=redis_cluster.url, env=cluster_worker_env(redis_url, **VISIBILITY)
    )
    dlq = DLQReader(cluster_client)

    def runs() -> dict[str, int]:
        raw = cluster_client.hgetall(CALLS_KEY)
        return {k.decode("utf-8", "surrogateescape"): int(v) for k, v in raw.items()}

    def dead_text() -> str:
        return "\n".join(json.dumps(e) for e in dlq.iter_entries(Filter()))

    def unresolved() -> list[Any]:
        done, text = runs(), dead_text()
        return [c for c in batch if _outcome(c, done, text) == (0, False)]

    _wait_quietly(lambda: not worker.alive() or not unresolved(), 20 + EXAMPLES // 4)
    assert worker.alive(), f"worker died:\n{worker.log()[-3000:]}"
    time.sleep(7)  # past the dead-owner sweep of anything still held
    done, text = runs(), dead_text()
    problems = []
    for case in batch:
        ran, dead = _outcome(case, done, text)
        if ran > 1 or (ran == 0 and not dead):
            problems.append(f"ran {ran}x, in DLQ: {dead}: {'; '.join(case.description)}")
    in_flight = {
        "unacked": cluster_client.hlen(unacked_key(QUEUE)),
        "quarantine": cluster_client.hlen(quarantine_key(QUEUE)),
        **{key: cluster_client.llen(key) for key in lists},
    }
    assert not problems, f"{len(problems)} of {len(batch)} cases:\n" + "\n".join(problems)
    assert not any(in_flight.values()), in_flight
    assert worker.alive()
