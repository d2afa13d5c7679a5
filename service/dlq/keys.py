"""Every Redis key the dead-letter queue uses, in one place (pure functions, no I/O).

Per source queue Q, every key in Q's hash slot (the hash tag `{Q}`), so each store script
touches one slot and runs on Redis Cluster as on one Redis:
  fleet:dlq:{Q}:entries      hash  id -> entry JSON (redacted: what operators see)
  fleet:dlq:{Q}:envelopes    hash  id -> the kombu message to push back on replay
  fleet:dlq:{Q}:index        zset  id by last failure (ms)
  fleet:dlq:{Q}:by-reason:R  zset  id by last failure, entries of reason R
  fleet:dlq:{Q}:by-task:T    zset  id by last failure, entries of task T
  fleet:dlq:{Q}:stats        hash  reason -> count
  fleet:dlq:{Q}:replaying    hash  id -> claim of a replay in flight (its push is elsewhere)
Across queues:
  fleet:dlq:queues           set   every queue that has held an entry (reads go over these
                                   and the catalog's, so a queue dropped from the catalog
                                   keeps its entries visible)
  fleet:dlq:parked           hash  "Q|id|ms" -> a message no entry could hold (last resort)
Around the DLQ:
  fleet:first-failure:T      string  when task T first failed (the entry's first_failure_at)
(The transport's quarantine key is named in service.catalog.naming.)

The layout before the hash tags (fleet:dlq:Q:entries, one cross-queue fleet:dlq:index...)
is in service.dlq.legacy_layout, which migrates it."""

from __future__ import annotations

from service.task_names import task_label

DLQ_PREFIX = "fleet:dlq"
QUEUES_KEY = f"{DLQ_PREFIX}:queues"
PARKED_KEY = f"{DLQ_PREFIX}:parked"
FIRST_FAILURE_PREFIX = "fleet:first-failure"


def queue_prefix(queue: str) -> str:
    """`fleet:dlq:{Q}`: the hash tag puts every key of Q's dead letters in one slot."""
    return f"{DLQ_PREFIX}:{{{queue}}}"


def entries_key(queue: str) -> str:
    """Hash: entry id -> JSON entry, for one source queue."""
    return f"{queue_prefix(queue)}:entries"


def envelopes_key(queue: str) -> str:
    """Hash: entry id -> the message replay pushes back, for one source queue."""
    return f"{queue_prefix(queue)}:envelopes"


def index_key(queue: str) -> str:
    """Sorted set: entry id scored by its last failure time (ordering and time filters)."""
    return f"{queue_prefix(queue)}:index"


def reason_index_key(queue: str, reason: str) -> str:
    return f"{queue_prefix(queue)}:by-reason:{reason}"


def task_index_key(queue: str, task_name: str) -> str:
    # Unregistered names share one index: their number is up to whoever sends messages.
    return f"{queue_prefix(queue)}:by-task:{task_label(task_name)}"


def stats_key(queue: str) -> str:
    """Hash: reason -> number of entries of Q with that reason."""
    return f"{queue_prefix(queue)}:stats"


def claims_key(queue: str) -> str:
    """Hash: entry id -> a replay claimed but not yet pushed (its target is in another
    slot, or the DLQ lives on its own Redis)."""
    return f"{queue_prefix(queue)}:replaying"


def first_failure_key(task_id: str) -> str:
    return f"{FIRST_FAILURE_PREFIX}:{task_id}"


def entry_keys(queue: str, reason: str, task_name: str) -> list[str]:
    """The KEYS of the store's add/remove scripts, in the order the scripts index them;
    all in the slot of `{queue}`."""
    return [
        entries_key(queue),
        envelopes_key(queue),
        index_key(queue),
        reason_index_key(queue, reason),
        task_index_key(queue, task_name),
        stats_key(queue),
    ]
