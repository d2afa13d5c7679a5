"""Grafana dashboards and Prometheus alert rules for celery-fleet, generated from the queue
catalog (`service.catalog.queues.CATALOG`). `python -m dashboards.generate` writes the
committed files: `dashboards/*.json` and `alerts/*.yaml`."""

from __future__ import annotations

OVERVIEW_UID = "celery-fleet-overview"
QUEUE_UID = "celery-fleet-queue"
