"""Cluster URLs: `rediscluster://` and `redisscluster://` select RedisCluster with the same
syntax and query options as `redis://`/`rediss://`; settings refuse what a cluster cannot
do, naming the variable and never echoing the URL."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import RedisClusterException

from service.config.redis_client import connect
from service.config.redis_url import is_cluster_url, node_url
from service.config.settings import load_settings
from service.errors import SettingsError


@pytest.mark.parametrize(
    ("url", "cluster", "node"),
    [
        ("rediscluster://cfg.example:6379", True, "redis://cfg.example:6379"),
        (
            "redisscluster://:pw@cfg.example:6379/0?ssl_cert_reqs=required",
            True,
            "rediss://:pw@cfg.example:6379/0?ssl_cert_reqs=required",
        ),
        ("redis://localhost:6379/0", False, "redis://localhost:6379/0"),
        ("rediss://h:6380/1", False, "rediss://h:6380/1"),
    ],
)
def test_cluster_scheme_is_the_node_scheme_plus_cluster(url: str, cluster: bool, node: str) -> None:
    assert is_cluster_url(url) is cluster
    assert node_url(url) == node


@pytest.mark.parametrize(
    "url",
    [
        "rediscluster://u:hunter2@cfg.example:6379",
        "redisscluster://:hunter2@cfg.example:6379/0?ssl_cert_reqs=required&socket_timeout=3",
        "redis://:hunter2@localhost:6379/0",
    ],
)
def test_accepted_broker_urls(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    assert load_settings().broker_url.get_secret_value() == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rediscluster://:hunter2@cfg.example:6379/2", "only database 0"),
        ("rediscluster://:hunter2@cfg.example:6379?db=3", "only database 0"),
        ("rediscluster://:hunter2@:6379", "needs a host"),
        ("rediscluster://:hunter2@h:6379?socket_timeout=soon", "invalid query option"),
        ("rediscluster://:hunter2@h:port", "has an invalid port"),
        ("redis-cluster://:hunter2@h:6379", "must be a Redis URL"),
    ],
)
def test_refused_cluster_urls_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    monkeypatch.setenv("FLEET_DLQ_URL", url)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert f"FLEET_DLQ_URL: {expected}" in str(caught.value) or expected in str(caught.value)
    assert "FLEET_DLQ_URL" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_factory_picks_the_client_class() -> None:
    # No connection is made until a command runs for Redis; RedisCluster discovers at once,
    # so only the class choice of the one-node client is checked here (the cluster tests
    # connect for real).
    assert isinstance(connect("redis://127.0.0.1:1/0"), redis.Redis)
    with pytest.raises(RedisClusterException, match="cannot be connected"):
        connect("rediscluster://127.0.0.1:1", socket_connect_timeout=0.2)
