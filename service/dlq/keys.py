"""Every Redis key the dead-letter queue uses, in one place (pure functions, no I/O).

Per source queue Q:
  fleet:dlq:Q:entries    hash  id -> entry JSON (redacted: what operators see)
  fleet:dlq:Q:envelopes  hash  id -> the kombu message to push back on replay
  fleet:dlq:Q:index      zset  id by last failure (ms)
Across queues, members "Q|id":
  fleet:dlq:index, fleet:dlq:by-reason:R, fleet:dlq:by-task:T   zsets for filters
  fleet:dlq:stats        hash  "Q|R" -> count
  fleet:dlq:replaying    hash  id -> claim of a replay in flight (DLQ on its own Redis)
  fleet:dlq:parked       hash  "Q|id|ms" -> a message no entry could hold (last resort)
Around the DLQ:
  fleet:quarantine       hash  "<list key>|sha1" -> bytes a pop took that cjson cannot read
  fleet:first-failure:T  string  when task T first failed (the entry's first_failure_at)"""

from __future__ import annotations

import hashlib

from service.task_names import bounded

DLQ_PREFIX = "fleet:dlq"
GLOBAL_INDEX = f"{DLQ_PREFIX}:index"
STATS_KEY = f"{DLQ_PREFIX}:stats"
CLAIMS_KEY = f"{DLQ_PREFIX}:replaying"
PARKED_KEY = f"{DLQ_PREFIX}:parked"
QUARANTINE_KEY = "fleet:quarantine"
FIRST_FAILURE_PREFIX = "fleet:first-failure"


def entries_key(queue: str) -> str:
    """Hash: entry id -> JSON entry, for one source queue."""
    return f"{DLQ_PREFIX}:{queue}:entries"


def envelopes_key(queue: str) -> str:
    """Hash: entry id -> the message replay pushes back, for one source queue."""
    return f"{DLQ_PREFIX}:{queue}:envelopes"


def index_key(queue: str) -> str:
    """Sorted set: entry id scored by its last failure time (ordering and time filters)."""
    return f"{DLQ_PREFIX}:{queue}:index"


def reason_index_key(reason: str) -> str:
    return f"{DLQ_PREFIX}:by-reason:{reason}"


def task_index_key(task_name: str) -> str:
    # Unregistered names share one index: their number is up to whoever sends messages.
    return f"{DLQ_PREFIX}:by-task:{bounded(task_name)}"


def first_failure_key(task_id: str) -> str:
    return f"{FIRST_FAILURE_PREFIX}:{task_id}"


def member(queue: str, entry_id: str) -> str:
    """A member of the cross-queue indexes (and a field of the stats hash: queue|reason)."""
    return f"{queue}|{entry_id}"


def split_member(value: str) -> tuple[str, str]:
    queue, _, entry_id = value.partition("|")
    return queue, entry_id


def quarantine_field(list_key: str, item: bytes) -> str:
    return f"{list_key}|{hashlib.sha1(item).hexdigest()}"


def quarantine_list_key(field: str) -> str:
    """The list a quarantined item was popped from (the inverse of quarantine_field)."""
    return field.rsplit("|", 1)[0]


def entry_keys(queue: str, reason: str, task_name: str) -> list[str]:
    """The KEYS of the store's add/remove scripts, in the order the scripts index them."""
    return [
        entries_key(queue),
        envelopes_key(queue),
        index_key(queue),
        GLOBAL_INDEX,
        reason_index_key(reason),
        task_index_key(task_name),
        STATS_KEY,
    ]
