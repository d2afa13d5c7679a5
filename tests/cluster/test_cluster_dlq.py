"""The dead-letter store and every `fleet dlq` command on a real Redis Cluster: entries of
every catalog queue spread over the primaries, each store script in one slot."""

from __future__ import annotations

import json

from cluster_fixtures import dead_letter, fleet
from cluster_harness import RedisClusterUnderTest
from redis.cluster import RedisCluster

from service.catalog.naming import priority_list_key, wake_key
from service.catalog.queues import CATALOG
from service.dlq.keys import claims_key, entries_key
from service.dlq.reader import Filter
from service.dlq.writer import DLQWriter


def fill(client: RedisCluster, per_queue: int = 3) -> DLQWriter:
    """`per_queue` entries in every catalog queue: the first through add (one script), the
    rest through add_many (one pipeline over every shard)."""
    store = DLQWriter(client)
    items = [
        dead_letter(queue, f"{queue}-{i}", at=1.7e9 + 10 * n + i)
        for n, queue in enumerate(CATALOG.names)
        for i in range(per_queue)
    ]
    assert store.add(*items[0])
    assert store.add_many(items[1:]) == len(items) - 1
    return store


def test_store_spreads_over_primaries_and_reads_across_them(
    redis_cluster: RedisClusterUnderTest, cluster_client: RedisCluster
) -> None:
    store = fill(cluster_client)
    owners = {redis_cluster.primary_for(entries_key(q)).port for q in CATALOG.names}
    assert len(owners) > 1, "the catalog's DLQs should not all sit on one shard"
    total = 3 * len(CATALOG.names)
    assert store.reader.count(Filter()) == total
    newest = store.reader.page(Filter(), limit=4)
    last = CATALOG.names[-1]
    assert [e["id"] for e in newest[:3]] == [f"{last}-2", f"{last}-1", f"{last}-0"]
    assert store.reader.count(Filter(queue="email")) == 3
    assert store.reader.stats()[("email", "non_retryable_error")] == 3
    assert store.reader.lengths(("email", "reports")) == {"email": 3, "reports": 3}


def test_fleet_dlq_commands_on_the_cluster(
    redis_cluster: RedisClusterUnderTest, cluster_client: RedisCluster
) -> None:
    fill(cluster_client)
    url = redis_cluster.url
    total = 3 * len(CATALOG.names)
    # stats and list read every shard
    stats = fleet(url, "dlq", "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert sum(row["count"] for row in json.loads(stats.stdout)) == total
    listed = fleet(url, "dlq", "list", "--json", "--limit", "1000")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == total
    shown = fleet(url, "dlq", "show", "email-1", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["queue"] == "email"
    # replay to its own queue: one script (the queue's base list shares the DLQ's slot)
    replayed = fleet(url, "dlq", "replay", "email-0", "--json")
    assert json.loads(replayed.stdout) == {"replayed": 1, "already_gone": 0}, replayed.stderr
    base = priority_list_key("email", 0, cluster=True)
    assert json.loads(cluster_client.lindex(base, 0))["headers"]["id"] == "email-0"
    assert cluster_client.llen(wake_key("email")) == 1
    # replay elsewhere: the destination is in another slot, so claim, push, drop the claim
    moved = fleet(url, "dlq", "replay", "reports-1", "--to-queue", "analytics", "--json")
    assert json.loads(moved.stdout) == {"replayed": 1, "already_gone": 0}, moved.stderr
    assert cluster_client.llen(priority_list_key("analytics", 0, cluster=True)) == 1
    assert cluster_client.hlen(claims_key("reports")) == 0
    # replaying the same id again enqueues nothing
    again = fleet(url, "dlq", "replay", "email-0", "--json")
    assert again.returncode == 1 and "no dead-letter entry" in again.stderr
    assert cluster_client.llen(base) == 1
    # purge by filter across shards
    purged = fleet(url, "dlq", "purge", "--reason", "non_retryable_error", "--yes", "--json")
    assert json.loads(purged.stdout) == {"purged": total - 2, "already_gone": 0}, purged.stderr
    empty = fleet(url, "dlq", "stats", "--json")
    assert json.loads(empty.stdout) == []


def test_a_priority_sub_list_is_replayed_in_one_script_on_its_queue_slot(
    cluster_client: RedisCluster,
) -> None:
    store = DLQWriter(cluster_client)
    entry, message = dead_letter("email", "urgent")
    message["properties"]["priority"] = 6
    store.add(entry, message)
    # every list of the queue carries its tag on a cluster: the entry's slot
    target = priority_list_key("email", 6, cluster=True)
    assert store._one_script("email", target)
    assert store.replay("email", "urgent") is True
    assert cluster_client.llen(target) == 1
    assert cluster_client.hlen(claims_key("email")) == 0
    assert store.reader.count(Filter()) == 0


def test_dlq_survives_a_graceful_failover(private_cluster: RedisClusterUnderTest) -> None:
    client = private_cluster.client()
    store = fill(client, per_queue=5)
    private_cluster.graceful_failover(entries_key("email"))
    # The same client follows MOVED to the promoted replica; nothing acknowledged is lost.
    assert store.reader.count(Filter()) == 5 * len(CATALOG.names)
    assert store.replay("email", "email-4") is True
    listed = fleet(private_cluster.url, "dlq", "list", "--queue", "email", "--json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [
        "email-3",
        "email-2",
        "email-1",
        "email-0",
    ]
    client.close()
