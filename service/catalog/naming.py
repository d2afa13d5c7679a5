"""Names derived from a queue name, the fleet's own Redis keys and message header, and its
ports. Every consumer (service, infra, dashboards, tests) calls or imports these; nothing
types them twice."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

# kombu's Redis transport defaults (kombu/transport/redis.py: DEFAULT_PRIORITY_STEPS, sep).
KOMBU_DEFAULT_SEP = "\x06\x16"
KOMBU_DEFAULT_PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)

# Ports: the worker's /metrics (FLEET_METRICS_PORT), the queue exporter's, Flower's, Redis'.
WORKER_METRICS_PORT = 9808
EXPORTER_PORT = 9809
FLOWER_PORT = 5555
REDIS_PORT = 6379


def k8s_name(queue: str) -> str:
    """DNS-1123 form of a queue name (Kubernetes forbids underscores)."""
    return queue.replace("_", "-")


def worker_deployment_name(queue: str) -> str:
    return f"celery-worker-{k8s_name(queue)}"


# A pool's PodDisruptionBudget and autoscaler (HPA or ScaledObject) carry its Deployment's
# name; dashboards and alerts find the HPA by it (KEDA prefixes `keda-hpa-`).
def worker_pdb_name(queue: str) -> str:
    return worker_deployment_name(queue)


def autoscaler_name(queue: str) -> str:
    return worker_deployment_name(queue)


# --- Redis keys of the broker transport (service.transport) -------------------------------
# Every key the pop, ack, restore and wake of one queue touch is a pure function of the queue
# name, here. All of a queue's transport keys share the hash tag `{<queue>}`, so on Redis
# Cluster each script touches one slot. The message lists are the exception on a single
# Redis: stock kombu producers push to `<queue>` and `<queue>\x06\x16<n>`, and the transport
# keeps consuming those names. On Redis Cluster (no stock producer can run there) the lists
# carry the tag too: `{q}`, `{q}\x06\x163`, ... (`priority_list_key(..., cluster=True)`).
#
# Layout for queue `q`:
#   q, q\x06\x163, ...          waiting messages, one list per priority step (kombu's names)
#   fleet:{q}:unacked           hash: delivery tag -> kombu's record [message, exchange, rk]
#   fleet:{q}:consumers         sorted set: consumer id -> last heartbeat (Redis TIME, s)
#   fleet:{q}:held:<consumer>   sorted set: delivery tag -> pop time (Redis TIME, s): what
#                               one consumer holds of q
#   fleet:{q}:wake              list of wake tokens for idle workers of q
#   fleet:{q}:quarantine        hash: bytes popped from q that cjson cannot read (below)
# kombu's own global `unacked` / `unacked_index` (stock kombu clients, the previous release)
# are only swept, after the visibility timeout (LEGACY_UNACKED_*).

# kombu/transport/redis.py: Channel.unacked_key, unacked_index_key, unacked_mutex_key.
LEGACY_UNACKED_KEY = "unacked"
LEGACY_UNACKED_INDEX_KEY = "unacked_index"
LEGACY_UNACKED_MUTEX_KEY = "unacked_mutex"


def queue_hash_tag(queue: str) -> str:
    """The hash tag every transport key of `queue` carries."""
    return "{" + queue + "}"


def priority_list_key(
    queue: str, priority: int, sep: str = KOMBU_DEFAULT_SEP, cluster: bool = False
) -> str:
    """The Redis list kombu uses for one priority step of a queue (step 0 is the bare name).
    On Redis Cluster the queue's hash tag stands for its name, so every list of the queue is
    in the slot of its other keys."""
    base = queue_hash_tag(queue) if cluster else queue
    return base if priority == 0 else f"{base}{sep}{priority}"


def priority_list_keys(
    queue: str,
    steps: Sequence[int] = KOMBU_DEFAULT_PRIORITY_STEPS,
    sep: str = KOMBU_DEFAULT_SEP,
    cluster: bool = False,
) -> list[str]:
    """Every Redis list that holds waiting messages of `queue`, most urgent first."""
    return [priority_list_key(queue, step, sep, cluster) for step in sorted(steps)]


def unacked_key(queue: str) -> str:
    """The unacked records of messages popped from `queue` by this transport."""
    return f"fleet:{queue_hash_tag(queue)}:unacked"


def consumers_key(queue: str) -> str:
    """The consumers of `queue` and their last heartbeat."""
    return f"fleet:{queue_hash_tag(queue)}:consumers"


def held_key(queue: str, consumer: str) -> str:
    """The delivery tags one consumer holds from `queue`."""
    return f"fleet:{queue_hash_tag(queue)}:held:{consumer}"


def wake_key(queue: str) -> str:
    """List of wake-up tokens for idle workers of `queue` (service.transport)."""
    return f"fleet:{queue_hash_tag(queue)}:wake"


# Set on every message at publish (worker hooks), read by the exporter (age of the oldest
# waiting message) and the DLQ (checked on receipt, reset on replay).
SENT_AT_HEADER = "fleet_sent_at"

# Bytes a pop took from a queue's list that Redis' cjson cannot read wait in the queue's
# quarantine hash until the worker has decided (service.transport.quarantine): hash
# "<list key>|sha1" -> the bytes. One per queue, in the queue's slot (the pop script writes
# it). The one global hash of earlier releases is still drained (LEGACY_QUARANTINE_KEY).
LEGACY_QUARANTINE_KEY = "fleet:quarantine"


def quarantine_key(queue: str) -> str:
    return f"fleet:{queue_hash_tag(queue)}:quarantine"


def quarantine_field(list_key: str, item: bytes) -> str:
    return f"{list_key}|{hashlib.sha1(item).hexdigest()}"


def quarantine_list_key(field: str) -> str:
    """The list a quarantined item was popped from (the inverse of quarantine_field)."""
    return field.rsplit("|", 1)[0]


# Celery beat's schedule and lock in Redis (celery-redbeat; service.config.celeryconfig).
# redbeat derives every key from the prefix: the entries `fleet:beat:<entry name>` (hashes:
# definition and last run), `fleet:beat::schedule` (zset: entry key by next run time),
# `fleet:beat::statics` (set: entries the code defines) and the lock below.
BEAT_KEY_PREFIX = "fleet:beat:"
# Held by the one active beat, extended every loop, expiring after FLEET_BEAT_LOCK_TIMEOUT.
BEAT_LOCK_KEY = f"{BEAT_KEY_PREFIX}lock"


def beat_entry_key(entry: str) -> str:
    """The hash redbeat keeps one schedule entry in (its definition and `last_run_at`)."""
    return f"{BEAT_KEY_PREFIX}{entry}"


def beat_schedule_key() -> str:
    """The sorted set of entry keys by next run time (redbeat: prefix + ':schedule')."""
    return f"{BEAT_KEY_PREFIX}:schedule"
