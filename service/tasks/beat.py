"""The beat schedule. Exactly ONE beat may run per deployment: two would send every periodic
task twice (infra deploys it as a single-replica Recreate Deployment)."""

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
