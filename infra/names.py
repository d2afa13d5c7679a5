"""Kubernetes object names that are not per-queue (those live in service.naming). Pure."""

from __future__ import annotations

from service.naming import k8s_name

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

# Ports: the worker's FLEET_METRICS_PORT default, the exporter's --port, Flower's default.
WORKER_METRICS_PORT = 9808
EXPORTER_PORT = 9809
FLOWER_PORT = 5555
REDIS_PORT = 6379


def worker_pdb_name(queue: str) -> str:
    return f"celery-worker-{k8s_name(queue)}"


def autoscaler_name(queue: str) -> str:
    return f"celery-worker-{k8s_name(queue)}"


def dashboard_configmap_name(stem: str) -> str:
    """ConfigMap holding one dashboards/<stem>.json (DNS-1123, at most 63 chars)."""
    cleaned = "".join(c if c.isalnum() else "-" for c in stem.lower()).strip("-")
    return f"dashboard-{cleaned}"[:63].rstrip("-")


def redis_host(namespace: str) -> str:
    return f"{REDIS}.{namespace}.svc.cluster.local"
