"""Periodic maintenance, scheduled by beat (service.tasks.beat)."""

from __future__ import annotations

import logging
import time

from celery import shared_task

from service.config.redis_client import dlq_redis
from service.config.settings import get_settings
from service.dlq.legacy_layout import migrate_legacy_layout
from service.exporter.queue_stats import read_queue_stats
from service.tasks.base import FleetTask

logger = logging.getLogger(__name__)


@shared_task(base=FleetTask, name="service.tasks.maintenance.snapshot_queues")
def snapshot_queues() -> dict[str, dict[str, int]]:
    """Log every queue's backlog and DLQ size: a trail in the logs even without Prometheus.
    Also moves dead letters that workers of the previous release wrote in the old layout
    during a rolling upgrade (service.dlq.legacy_layout; one EXISTS when there are none)."""
    migrate_legacy_layout(dlq_redis(), get_settings().priority_sep)
    stats = read_queue_stats()
    snapshot = {
        name: {"waiting": s.length, "dead_letters": s.dlq_length} for name, s in stats.items()
    }
    logger.info("queue snapshot", extra={"snapshot": snapshot})
    return snapshot


@shared_task(base=FleetTask, name="service.tasks.maintenance.cleanup_reports")
def cleanup_reports(max_age_seconds: int = 7 * 86_400) -> int:
    """Delete report files older than `max_age_seconds`; returns how many."""
    directory = get_settings().reports_dir
    if not directory.exists():
        return 0
    cutoff = time.time() - max_age_seconds
    removed = 0
    for path in directory.glob("*.csv"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
