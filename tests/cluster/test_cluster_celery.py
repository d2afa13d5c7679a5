"""What rides on the broker, on a real Redis Cluster: fair pops across slots, wake tokens,
poison to the DLQ, `celery inspect`, task events, beat's sends, and the clear refusal of
stored results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

import pytest
from cluster_fixtures import cluster_app, cluster_worker_env, fleet, runs
from cluster_harness import RedisClusterUnderTest
from dlq.test_poison import POISON
from harness import REPO, free_port, start_fleet, wait_until
from redis.cluster import RedisCluster

from service.catalog.naming import (
    BEAT_LOCK_KEY,
    priority_list_key,
    priority_list_keys,
    quarantine_key,
)
from service.catalog.queues import CATALOG
from service.dlq.reader import DLQReader, Filter
from service.errors import ClusterModeUnsupported

RECORD = "service.tasks.diagnostics.record"
NO_IDLE_POLL = {"FLEET_IDLE_POLL_SECONDS": "600"}  # only a wake token can wake the worker


def test_a_full_queue_does_not_starve_another_on_another_slot(
    redis_cluster: RedisClusterUnderTest,
    cluster_client: RedisCluster,
    redis_url: str,
    worker_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = cluster_app(redis_cluster.url, monkeypatch)
    for i in range(150):
        app.send_task(RECORD, args=["busy", str(i), 0.02], queue="email")
    for i in range(3):
        app.send_task(RECORD, args=["other", str(i)], queue="reports")
    worker_factory(
        "email,reports",
        broker_url=redis_cluster.url,
        env=cluster_worker_env(redis_url),
        concurrency=1,
    )
    wait_until(lambda: len(runs(cluster_client, "other")) == 3, 60, message="reports ran")
    # the worker alternates slots: reports' three ran long before email's backlog is done
    assert len(runs(cluster_client, "busy")) < 50


@pytest.mark.parametrize("queues", ["email", "email,reports,analytics"])
def test_an_idle_worker_is_woken_by_the_wake_token(
    redis_cluster: RedisClusterUnderTest,
    cluster_client: RedisCluster,
    redis_url: str,
    worker_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    queues: str,
) -> None:
    worker_factory(
        queues, broker_url=redis_cluster.url, env=cluster_worker_env(redis_url, **NO_IDLE_POLL)
    )
    time.sleep(2)  # idle: blocked on a wake list
    app = cluster_app(redis_cluster.url, monkeypatch)
    app.send_task(RECORD, args=["woken", "1"], queue=queues.split(",")[-1])
    wait_until(lambda: runs(cluster_client, "woken") == {"1": 1}, 30, message="woken")


def test_poison_on_a_cluster_lands_in_the_dlq_with_its_bytes_and_reason(
    redis_cluster: RedisClusterUnderTest,
    cluster_client: RedisCluster,
    redis_url: str,
    worker_factory: Any,
) -> None:
    base = priority_list_key("default", 0, cluster=True)
    for _, raw in POISON:
        cluster_client.lpush(base, raw)
    worker = worker_factory(
        "default",
        broker_url=redis_cluster.url,
        env=cluster_worker_env(redis_url, FLEET_MAX_BODY_BYTES="2048"),
    )
    dlq = DLQReader(cluster_client)
    wait_until(lambda: dlq.count(Filter()) >= len(POISON), 30, message="all poison captured")
    expected: dict[str, int] = {}
    for reason, _ in POISON:
        expected[reason] = expected.get(reason, 0) + 1
    assert {reason: n for (_, reason), n in dlq.stats().items()} == expected
    assert cluster_client.llen(base) == 0
    assert cluster_client.hlen(quarantine_key("default")) == 0
    entries = dlq.page(Filter(reason="malformed_envelope"))
    assert any(e["raw_body"] == "this is not json at all" for e in entries)
    listed = fleet(redis_cluster.url, "dlq", "list", "--queue", "default", "--json")
    assert len(json.loads(listed.stdout)) == len(POISON), listed.stderr
    assert worker.alive()


def test_celery_inspect_ping_reaches_a_worker_on_a_cluster(
    redis_cluster: RedisClusterUnderTest, redis_url: str, worker_factory: Any
) -> None:
    worker = worker_factory(
        "default", broker_url=redis_cluster.url, env=cluster_worker_env(redis_url)
    )
    env = {k: v for k, v in os.environ.items() if k != "CELERY_RESULT_BACKEND"}
    env["CELERY_BROKER_URL"] = redis_cluster.url
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "service", "inspect", "ping", "--timeout", "5"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert worker.name in done.stdout and "pong" in done.stdout
    assert "CROSSSLOT" not in done.stdout + done.stderr


def test_task_events_reach_a_receiver_on_a_cluster(
    redis_cluster: RedisClusterUnderTest,
    cluster_client: RedisCluster,
    redis_url: str,
    worker_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Flower's source: the worker's events (PUBLISH on the cluster, which every node
    forwards) reach a receiver subscribed on one node."""
    app = cluster_app(redis_cluster.url, monkeypatch)
    seen: list[dict[str, Any]] = []
    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": seen.append})
        listening = threading.Thread(
            target=lambda: receiver.capture(limit=None, timeout=None, wakeup=False), daemon=True
        )
        listening.start()
        worker_factory(
            "default",
            broker_url=redis_cluster.url,
            env=cluster_worker_env(redis_url, FLEET_TASK_EVENTS="true"),
        )
        wait_until(lambda: seen, 30, message="the worker's first event (subscribed)")
        sent = app.send_task(RECORD, args=["events", "1"], queue="default")

        def succeeded() -> bool:
            return any(e.get("type") == "task-succeeded" and e.get("uuid") == sent.id for e in seen)

        try:
            wait_until(succeeded, 30, message="task-succeeded")
        finally:
            receiver.should_stop = True
            listening.join(10)


def test_beat_sends_on_a_cluster(redis_cluster: RedisClusterUnderTest, tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CELERY_RESULT_BACKEND"}
    env.update({"CELERY_BROKER_URL": redis_cluster.url, "FLEET_SNAPSHOT_INTERVAL": "1"})
    client = redis_cluster.client()
    client.delete(BEAT_LOCK_KEY)
    beat = start_fleet("beat", env, tmp_path / "beat.log")
    lists = [key for spec in CATALOG for key in priority_list_keys(spec.name, cluster=True)]

    def sent() -> int:
        return sum(int(client.llen(key)) for key in lists)

    try:
        wait_until(lambda: sent() >= 2, 40, message="beat's sends on the cluster")
        assert client.exists(BEAT_LOCK_KEY)
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(20)
        client.close()
    assert "CROSSSLOT" not in (tmp_path / "beat.log").read_text()


def test_results_on_a_cluster_broker_say_where_to_store_them(
    redis_cluster: RedisClusterUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    app = cluster_app(redis_cluster.url, monkeypatch)
    sent = app.send_task(RECORD, args=["results", "1"], queue="default")
    with pytest.raises(ClusterModeUnsupported, match="CELERY_RESULT_BACKEND") as refused:
        sent.get(timeout=1)
    assert "PostgreSQL" in str(refused.value) and "CROSSSLOT" not in str(refused.value)


def test_flower_serves_on_a_cluster_broker(
    redis_cluster: RedisClusterUnderTest, tmp_path: Any
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CELERY_RESULT_BACKEND"}
    port = free_port()
    env.update({"CELERY_BROKER_URL": redis_cluster.url, "FLEET_FLOWER_PORT": str(port)})
    flower = start_fleet("flower", env, tmp_path / "flower.log")

    def page(path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                return int(answer.status)
        except OSError:
            return 0

    try:
        wait_until(lambda: page("/healthcheck") == 200, 40, message="Flower up")
        assert page("/workers") == 200
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(20)
    assert "CROSSSLOT" not in (tmp_path / "flower.log").read_text()


def test_binding_tables_of_expiring_queues_are_kept_and_swept_per_slot(
    redis_cluster: RedisClusterUnderTest, cluster_client: RedisCluster
) -> None:
    """kombu keeps the bindings of expiring queues (pidbox, replies) with a deadline; here
    the deadline sits in the table's slot, so refresh and sweep are one script each."""
    from kombu import Connection, Exchange, Queue

    from service.transport.cluster_bindings import DEADLINE, TABLE

    exchange = Exchange("fleet.test.reply", type="direct")
    with Connection(redis_cluster.url) as connection:
        channel = connection.channel()
        Queue("t1.reply", exchange, routing_key="t1", expires=10.0)(channel).declare()
        assert cluster_client.scard(TABLE % exchange.name) == 1
        assert int(cluster_client.get(DEADLINE % exchange.name)) > time.time() * 1000
        assert channel.sweep_bindings() == 0  # not due: kept
        cluster_client.set(DEADLINE % exchange.name, 1)  # nobody refreshed it in time
        assert channel.sweep_bindings() == 1
        assert not cluster_client.exists(TABLE % exchange.name, DEADLINE % exchange.name)
