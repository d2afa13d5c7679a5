"""What still cannot run on Redis Cluster (stored results: Celery's Redis result backend
issues commands over several keys) says so, naming the variable and the alternatives:
never a CROSSSLOT traceback, never a hang. Everything else starts on a cluster URL."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from cluster_fixtures import cluster_app, fleet, runs
from cluster_harness import RedisClusterUnderTest
from harness import REPO, wait_until
from redis.cluster import RedisCluster

from service.catalog.naming import unacked_key

CROSSSLOT = "CROSSSLOT"  # what Redis answers a script or command spanning slots
RECORD = "service.tasks.diagnostics.record"


def _python(url_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_RESULT_BACKEND",)}
    env.update(url_env)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_cluster_result_backend_is_refused_at_start(
    redis_cluster: RedisClusterUnderTest, redis_url: str
) -> None:
    """Stored results cannot live on a cluster: the settings refuse the URL at start, naming
    the variable, never echoing it."""
    done = _python(
        {"CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_cluster.url},
        "-c",
        "from service import app",
    )
    assert done.returncode != 0
    assert "CELERY_RESULT_BACKEND: must be a Redis URL or a PostgreSQL" in done.stderr
    assert "FLEET_CELERY_RESULT_BACKEND" not in done.stderr
    assert CROSSSLOT not in done.stderr
    assert redis_cluster.url not in done.stderr


@pytest.mark.parametrize("command", [["worker", "-Q", "default"], ["beat"], ["flower"]])
def test_fleet_commands_with_a_cluster_result_backend_exit_2_naming_it(
    redis_cluster: RedisClusterUnderTest, redis_url: str, command: list[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CELERY_RESULT_BACKEND"}
    env.update({"CELERY_BROKER_URL": redis_cluster.url, "CELERY_RESULT_BACKEND": redis_cluster.url})
    done = subprocess.run(
        [sys.executable, "-m", "service", *command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "CELERY_RESULT_BACKEND" in done.stderr
    assert "Traceback" not in done.stderr and CROSSSLOT not in done.stderr


def test_the_dlq_cli_still_works_on_a_cluster_broker(redis_cluster: RedisClusterUnderTest) -> None:
    done = fleet(redis_cluster.url, "dlq", "stats", "--json")
    assert done.returncode == 0, done.stderr


def test_a_worker_storing_a_result_on_a_cluster_broker_names_the_alternatives(
    redis_cluster: RedisClusterUnderTest,
    cluster_client: RedisCluster,
    worker_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CELERY_RESULT_BACKEND unset with a cluster broker: a task that asks for its result to
    be stored still runs, and the worker logs ClusterModeUnsupported naming the variable
    and the alternatives, not a CROSSSLOT traceback; the worker carries on."""
    worker = worker_factory(
        "default", broker_url=redis_cluster.url, env={"CELERY_RESULT_BACKEND": None}
    )
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    app = cluster_app(redis_cluster.url, monkeypatch)
    app.send_task(RECORD, args=["store", "1"], queue="default", ignore_result=False)
    wait_until(lambda: runs(cluster_client, "store") == {"1": 1}, 30, message="task ran")
    wait_until(lambda: "ClusterModeUnsupported" in worker.log(), 15, message="refusal logged")
    log = worker.log()
    assert "CELERY_RESULT_BACKEND" in log and "PostgreSQL" in log
    assert CROSSSLOT not in log
    app.send_task(RECORD, args=["store", "2"], queue="default")  # results ignored: as shipped
    wait_until(lambda: runs(cluster_client, "store") == {"1": 1, "2": 1}, 30, message="next")
    assert worker.alive()
    # the refused store does not leave its message held: acked, it never runs again
    wait_until(lambda: cluster_client.hlen(unacked_key("default")) == 0, 15, message="acked")
