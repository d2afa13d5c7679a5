"""What cannot run on Redis Cluster yet (Celery's transport and result backend: workers,
beat, Flower, inspect/control, producers) says so, naming the variable: never a CROSSSLOT
traceback, never a hang."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cluster_fixtures import fleet
from cluster_harness import RedisClusterUnderTest
from harness import REPO

REFUSAL = "is a Redis Cluster URL"
CROSSSLOT = "CROSSSLOT"  # what Redis answers a script or command spanning slots


@pytest.mark.parametrize("command", [["worker", "-Q", "default"], ["beat"], ["flower"]])
def test_fleet_celery_commands_exit_2_with_the_reason(
    redis_cluster: RedisClusterUnderTest, command: list[str]
) -> None:
    done = fleet(redis_cluster.url, *command)
    assert done.returncode == 2
    assert f"CELERY_BROKER_URL {REFUSAL}" in done.stderr
    assert "Traceback" not in done.stderr and CROSSSLOT not in done.stderr


def _python(url_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_RESULT_BACKEND",)}
    env.update(url_env)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_celery_inspect_names_the_variable(redis_cluster: RedisClusterUnderTest) -> None:
    done = _python(
        {"CELERY_BROKER_URL": redis_cluster.url},
        "-m",
        "celery",
        "-A",
        "service",
        "inspect",
        "ping",
        "--timeout",
        "2",
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"CELERY_BROKER_URL {REFUSAL}" in output
    assert CROSSSLOT not in output


def test_a_producer_is_refused_when_it_publishes(redis_cluster: RedisClusterUnderTest) -> None:
    code = (
        "from service.errors import ClusterModeUnsupported\n"
        "from service import app\n"
        "from service.tasks.diagnostics import noop\n"
        "try:\n"
        "    noop.delay(1)\n"
        "except ClusterModeUnsupported as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = _python({"CELERY_BROKER_URL": redis_cluster.url}, "-c", code)
    assert done.returncode == 0, done.stderr
    assert f"refused: CELERY_BROKER_URL {REFUSAL}" in done.stdout


def test_a_cluster_result_backend_is_refused_at_start(
    redis_cluster: RedisClusterUnderTest, redis_url: str
) -> None:
    """Stored results cannot live on a cluster (Celery's Redis backend pipelines across
    slots): the settings refuse the URL at start, naming the variable, never echoing it."""
    done = _python(
        {"CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_cluster.url},
        "-c",
        "from service import app",
    )
    assert done.returncode != 0
    assert "CELERY_RESULT_BACKEND: must be a Redis URL or a PostgreSQL" in done.stderr
    assert "FLEET_CELERY_RESULT_BACKEND" not in done.stderr
    assert "CROSSSLOT" not in done.stderr
    assert redis_cluster.url not in done.stderr
