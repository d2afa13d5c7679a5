"""Kubernetes object names that are not per-queue (those, and the ports, live in
service.catalog.naming). Pure."""

from __future__ import annotations

# Re-exported for the infra modules: defined once, in service.catalog.naming.
from service.catalog.naming import EXPORTER_PORT as EXPORTER_PORT
from service.catalog.naming import FLOWER_PORT as FLOWER_PORT
from service.catalog.naming import REDIS_PORT as REDIS_PORT
from service.catalog.naming import WORKER_METRICS_PORT as WORKER_METRICS_PORT

PART_OF = "celery-fleet"

BROKER_SECRET = "celery-fleet-broker"
BROKER_URL_KEY = "broker-url"
APP_SECRET = "celery-fleet-app"
SMTP_PASSWORD_KEY = "smtp-password"
FLOWER_SECRET = "celery-fleet-flower"
FLOWER_AUTH_KEY = "basic-auth"
SERVICE_ACCOUNT = "celery-fleet"
REDIS = "celery-fleet-redis"
REDIS_PASSWORD_KEY = "password"
BEAT = "celery-beat"
EXPORTER = "celery-exporter"
FLOWER = "celery-flower"


def dashboard_configmap_name(stem: str) -> str:
    """ConfigMap holding one dashboards/<stem>.json (DNS-1123, at most 63 chars)."""
    cleaned = "".join(c if c.isalnum() else "-" for c in stem.lower()).strip("-")
    return f"dashboard-{cleaned}"[:63].rstrip("-")


def redis_host(namespace: str) -> str:
    return f"{REDIS}.{namespace}.svc.cluster.local"
