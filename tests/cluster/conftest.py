"""The session's Redis Cluster (3 primaries + 3 replicas on loopback), started once for the
tests under tests/cluster and torn down at the end. Tests that fail a node over take their
own cluster (`private_cluster`) so the shared one stays whole."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_harness import RedisClusterUnderTest
from redis.cluster import RedisCluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterUnderTest]:
    cluster = RedisClusterUnderTest()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def cluster_client(redis_cluster: RedisClusterUnderTest) -> Iterator[RedisCluster]:
    """A client of the shared cluster, every primary emptied first."""
    redis_cluster.flush()
    client = redis_cluster.client()
    yield client
    client.close()


@pytest.fixture
def private_cluster() -> Iterator[RedisClusterUnderTest]:
    """A cluster of this test's own, for failovers and killed primaries."""
    cluster = RedisClusterUnderTest()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session", autouse=True)
def registered_task_names() -> None:
    """The DLQ caps task names in its index keys to the registered tasks (service.task_names),
    which the app installs: build it once, as every fleet process does."""
    from service import app

    assert app.main == "service"


@pytest.fixture
def persistent_cluster() -> Iterator[RedisClusterUnderTest]:
    """A cluster of this test's own whose nodes keep an AOF (fsync always), for restarts."""
    cluster = RedisClusterUnderTest(appendonly=True)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
