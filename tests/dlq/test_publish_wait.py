"""FLEET_PUBLISH_WAIT_REPLICAS on one Redis: a publish that no replica confirms in time
raises PublishNotReplicated naming the setting; the message is queued all the same.
(On a cluster with a replica: tests/cluster/test_cluster_faults.py.)"""

from __future__ import annotations

import pytest
import redis

from service.app_factory import create_app
from service.catalog.naming import priority_list_keys
from service.config.settings import FleetSettings
from service.transport.replicated import PublishNotReplicated


def test_a_publish_no_replica_confirms_says_so_and_stays_queued(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_PUBLISH_WAIT_REPLICAS", "1")
    monkeypatch.setenv("FLEET_PUBLISH_WAIT_TIMEOUT_MS", "100")
    app = create_app(FleetSettings())
    with pytest.raises(PublishNotReplicated, match="0 of 1 replica") as refused:
        app.send_task("service.tasks.diagnostics.noop", args=[1])
    assert "FLEET_PUBLISH_WAIT_REPLICAS" in str(refused.value)
    assert sum(int(redis_client.llen(key)) for key in priority_list_keys("default")) == 1
