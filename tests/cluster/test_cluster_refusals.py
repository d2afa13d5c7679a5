"""What still cannot run on Redis Cluster (stored results: Celery's Redis result backend
issues commands over several keys) says so, naming the variable and the alternatives:
never a CROSSSLOT traceback, never a hang. Everything else starts on a cluster URL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cluster_fixtures import fleet
from cluster_harness import RedisClusterUnderTest
from harness import REPO

CROSSSLOT = "CROSSSLOT"  # what Redis answers a script or command spanning slots


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
