"""The cluster harness itself: slots spread over three primaries, and both failovers keep
the cluster serving with the replica promoted."""

from __future__ import annotations

from cluster_harness import BUS_PORT_OFFSET, RedisClusterUnderTest
from redis.cluster import RedisCluster


def test_three_primaries_three_replicas_serve_every_slot(
    redis_cluster: RedisClusterUnderTest, cluster_client: RedisCluster
) -> None:
    roles = sorted(node.role() for node in redis_cluster.nodes)
    assert roles == ["master"] * 3 + ["slave"] * 3
    assert all(node.port + BUS_PORT_OFFSET <= 65_535 for node in redis_cluster.nodes)
    # Keys spread over the primaries: a hash tag decides the slot, hence the node.
    owners = {redis_cluster.primary_for(f"{{q{i}}}:x").port for i in range(30)}
    assert len(owners) == 3
    cluster_client.set("{a}:1", "v")
    assert cluster_client.get("{a}:1") == b"v"


def test_graceful_failover_keeps_acknowledged_writes(
    private_cluster: RedisClusterUnderTest,
) -> None:
    client = private_cluster.client()
    for i in range(200):
        client.rpush("{queue}:list", i)
    old, new = private_cluster.graceful_failover("{queue}:list")
    assert old.role() == "slave" and new.role() == "master"
    assert client.llen("{queue}:list") == 200  # the client follows MOVED to the new primary
    client.close()


def test_killed_primary_is_replaced_by_its_replica(
    private_cluster: RedisClusterUnderTest,
) -> None:
    client = private_cluster.client()
    client.set("{k}:x", "1")
    client.execute_command("WAIT", 1, 2000, target_nodes=client.get_node_from_key("{k}:x"))
    old, new = private_cluster.kill_primary("{k}:x")
    assert not old.alive() and new.role() == "master"
    assert private_cluster.primary_for("{k}:x").port == new.port
    client.close()
    fresh = private_cluster.client()
    assert fresh.get("{k}:x") == b"1"  # replicated before the kill (WAIT 1): survives it
    private_cluster.restart(old)
    assert old.role() == "slave"
    fresh.close()
