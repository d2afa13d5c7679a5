"""The beat schedule. Exactly ONE beat may send per deployment: two would send every periodic
task twice. celery-redbeat enforces it with a lock in Redis (service.config.celeryconfig
`beat_config`): infra runs a standby beat that takes over when the active one dies."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from service.config.settings import get_settings


def schedule() -> dict[str, dict[str, Any]]:
    return {
        "snapshot-queues": {
            "task": "service.tasks.maintenance.snapshot_queues",
            "schedule": get_settings().snapshot_interval,
        },
        "cleanup-reports": {
            "task": "service.tasks.maintenance.cleanup_reports",
            "schedule": crontab(minute=17, hour=3),
        },
    }
