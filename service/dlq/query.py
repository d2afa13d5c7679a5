"""Which dead-letter entries a command means (queue, task, reason, time range), and the
narrowest index that finds them; the rest is checked per entry."""

from __future__ import annotations

from dataclasses import dataclass

from service.dlq.entry import DLQEntry
from service.dlq.keys import GLOBAL_INDEX, index_key, reason_index_key, task_index_key


@dataclass(frozen=True)
class Filter:
    queue: str | None = None
    task_name: str | None = None
    reason: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, entry: DLQEntry) -> bool:
        return (
            (self.queue is None or entry["queue"] == self.queue)
            and (self.task_name is None or entry["task_name"] == self.task_name)
            and (self.reason is None or entry["reason"] == self.reason)
        )

    def queue_only(self) -> bool:
        """Only the queue (and times) narrow it: its per-queue index holds exactly that."""
        return self.queue is not None and self.task_name is None and self.reason is None

    def index_key(self) -> str:
        # The narrowest index the filter allows; the rest is checked per entry.
        if self.task_name is not None:
            return task_index_key(self.task_name)
        if self.reason is not None:
            return reason_index_key(self.reason)
        if self.queue is not None:
            return index_key(self.queue)  # members are bare ids; see iter_entries
        return GLOBAL_INDEX
