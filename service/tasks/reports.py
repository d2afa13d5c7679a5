"""Report tasks: write CSV files into the reports directory from settings."""

from __future__ import annotations

import calendar
import csv
import os
import tempfile
from pathlib import Path
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from service.config.settings import get_settings
from service.tasks.base import FleetTask


def _write_report(name: str, rows: list[dict[str, Any]]) -> str:
    """Write atomically (temp file + rename) so a killed task never leaves half a report."""
    directory = get_settings().reports_dir
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.csv"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            fieldnames = sorted({key for row in rows for key in row}) or ["empty"]
            writer = csv.DictWriter(handle, fieldnames=fieldnames)
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
        os.replace(tmp, target)
    except SoftTimeLimitExceeded:
        Path(tmp).unlink(missing_ok=True)
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(target)


@shared_task(base=FleetTask, name="service.tasks.reports.generate_urgent_report")
def generate_urgent_report(report_id: str) -> str:
    """Routed to high_priority by name."""
    return _write_report(f"urgent-{report_id}", [{"report_id": report_id, "status": "ready"}])


@shared_task(base=FleetTask, name="service.tasks.reports.generate_monthly_report")
def generate_monthly_report(month: int, year: int) -> str:
    """Routed to low_priority by name: one row per day of the month."""
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, got {month}")
    days = calendar.monthrange(year, month)[1]
    rows = [{"date": f"{year:04d}-{month:02d}-{day:02d}", "day": day} for day in range(1, days + 1)]
    return _write_report(f"monthly-{year:04d}-{month:02d}", rows)


@shared_task(base=FleetTask, name="service.tasks.reports.generate_custom_report")
def generate_custom_report(
    params: dict[str, Any], user_tier: str = "free", data_size: int = 0
) -> str:
    """Routed to reports by pattern, or dynamically by `user_tier` / `data_size`."""
    name = str(params.get("name", "custom")).replace("/", "_")
    return _write_report(f"custom-{name}", [dict(params, user_tier=user_tier, size=data_size)])
