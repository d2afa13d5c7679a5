"""Acks and requeues Redis refused because it was unavailable (full under noeviction,
read-only, paused past the socket timeout, gone for a moment), kept and written later.

Until the ack is written the message's unacked record stays in Redis, so a worker that dies
meanwhile loses nothing: the visibility sweep restores the record and the task runs again
(a duplicate run is acceptable, a lost message is not). The worker retries them before each
poll, so they go through within about a second of Redis accepting writes again. The retry
is bounded: a tag kept longer than `max_age` is given up to the sweep (it runs again once),
because past half the visibility timeout the sweep may already have handed the message to
another worker under the same tag, and a late ack would delete that worker's record."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from service.config.redis_faults import REFUSALS, is_redis_unavailable, note_refusal

logger = logging.getLogger(__name__)

# Tags kept at most (one per message a worker holds; a worker holds few).
MAX_PENDING = 10_000


class PendingWrites:
    """One per worker process (a reconnect makes new channels; the kept tags survive it)."""

    def __init__(self) -> None:
        # tag -> (operation, first refusal, monotonic)
        self._kept: dict[str, tuple[str, float]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, operation: str, tag: str, exc: BaseException) -> None:
        """One refused write: counted, and logged once per message (its retries are only
        counted, and logged at most every WARN_EVERY seconds)."""
        REFUSALS.labels(operation).inc()
        if tag in self._kept or len(self._kept) >= MAX_PENDING:
            return
        self._kept[tag] = (operation, time.monotonic())
        logger.warning(
            "Redis refused the %s of message %s (%s: %.200s); its unacked record stays and "
            "the %s is retried before each poll",
            operation,
            tag,
            type(exc).__name__,
            str(exc),
            operation,
            extra={"operation": operation},
        )

    def flush(self, write: Callable[[str, str], Any], max_age: float) -> int:
        """Retry kept writes in order, `write(operation, tag)`; stops at the first refusal
        (Redis still unavailable). Returns how many went through."""
        done = 0
        now = time.monotonic()
        for tag, (operation, since) in list(self._kept.items()):
            if now - since > max_age:
                del self._kept[tag]
                logger.warning(
                    "gave up writing the %s of message %s after %.0fs; the visibility sweep "
                    "restores it and it may run again",
                    operation,
                    tag,
                    now - since,
                )
                continue
            try:
                write(operation, tag)
            except Exception as exc:
                if is_redis_unavailable(exc):
                    note_refusal(operation, exc)
                    break
                # Not Redis' state: the record stays for the sweep, which handles it alone.
                del self._kept[tag]
                logger.warning(
                    "%s of message %s failed (%s); left to the sweep", operation, tag, exc
                )
                continue
            del self._kept[tag]
            done += 1
        if done:
            logger.info("wrote %d acks/requeues Redis had refused", done)
        return done


pending_writes = PendingWrites()
