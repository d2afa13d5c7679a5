"""Publishes that return only once a replica has them (FLEET_PUBLISH_WAIT_REPLICAS).

Redis replicates asynchronously: a primary that dies after acknowledging a publish and
before its replica copied it loses that message when the replica takes over. With this
setting each publish is followed by `WAIT <replicas> <timeout ms>` on the same connection
(WAIT counts the replicas that acknowledged this connection's writes), so `apply_async`
returns only once that many replicas hold the message. The cost is one more command per
publish and the replica's round trip in the publisher's latency; a replica that does not
confirm in time makes the publish raise PublishNotReplicated (the message is queued on the
primary and will most likely run; retrying may run it twice). Off by default. Restores and
wake tokens are not waited for (a restore is a copy that comes back again after a loss)."""

from __future__ import annotations

from typing import Any

from redis.exceptions import AskError, NoScriptError

from service.config.redis_client import RedisClient, is_cluster
from service.errors import FleetError


class PublishNotReplicated(FleetError):
    """A publish reached the primary but not the replicas FLEET_PUBLISH_WAIT_REPLICAS asks."""


def _node_client(client: RedisClient, key: str) -> Any:
    """The client of the one Redis that holds `key`: WAIT must follow the write on the
    same connection, so on a cluster both go to the key's primary in one pipeline."""
    if not is_cluster(client):
        return client
    node = client.get_node_from_key(key)  # type: ignore[union-attr]
    return client.get_redis_connection(node)  # type: ignore[union-attr]


def push_and_wait(
    client: RedisClient,
    script: Any,
    keys: list[str],
    args: list[Any],
    replicas: int,
    timeout_ms: int,
) -> None:
    """Run `script` (a registered Script) with `keys`/`args`, then WAIT on its connection."""
    for attempt in (1, 2, 3):
        target = _node_client(client, keys[0])
        with target.pipeline(transaction=False) as pipe:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", replicas, timeout_ms)
            try:
                _, acknowledged = pipe.execute()
            except NoScriptError:
                target.script_load(script.script)
                continue
            except AskError:  # MOVED or ASK: the slot moved (failover, resharding)
                if attempt == 3 or not is_cluster(client):
                    raise
                client.nodes_manager.initialize()  # type: ignore[union-attr]
                continue
        if int(acknowledged) < replicas:
            raise PublishNotReplicated(
                f"the message is queued on the primary, but only {int(acknowledged)} of "
                f"{replicas} replica(s) confirmed it within {timeout_ms} ms "
                "(FLEET_PUBLISH_WAIT_REPLICAS, FLEET_PUBLISH_WAIT_TIMEOUT_MS): it is lost if "
                "the primary fails before replicating it; publishing again may run it twice"
            )
        return
    raise PublishNotReplicated("the publish script could not be loaded on the primary")
