"""The dead-letter store as the settings name it: a reader for whoever only looks (`fleet
dlq list|show|stats`), a writer for whoever changes it (capture, `fleet dlq replay|purge`).

Opening it, in either form, first migrates the pre-hash-tag layout once per DLQ URL and
process (service.dlq.legacy_layout), so no reader misses an entry the previous release
wrote."""

from __future__ import annotations

from service.config.redis_client import RedisClient, broker_redis, dlq_redis
from service.config.settings import get_settings
from service.dlq.legacy_layout import migrate_legacy_layout
from service.dlq.reader import DLQReader
from service.dlq.writer import DLQWriter

# DLQ URLs whose pre-hash-tag layout this process has migrated.
_migrated: set[str] = set()


def _opened() -> RedisClient:
    settings = get_settings()
    client = dlq_redis()
    if settings.dlq_redis_url not in _migrated:
        migrate_legacy_layout(client, settings.priority_sep)
        _migrated.add(settings.dlq_redis_url)
    return client


def dlq_reader() -> DLQReader:
    return DLQReader(_opened())


def dlq_writer() -> DLQWriter:
    """Replays push to the broker's lists: on the DLQ's own Redis when it is the broker's
    (one script), else through the broker's client (claim, push, release)."""
    settings = get_settings()
    separate = settings.dlq_redis_url != settings.broker_url.get_secret_value()
    return DLQWriter(
        _opened(),
        settings.priority_steps,
        settings.priority_sep,
        broker=broker_redis() if separate else None,
    )
