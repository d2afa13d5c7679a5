"""The Celery application: `celery -A service worker -Q <queue>` loads `service.app`."""

from __future__ import annotations

from celery import Celery

from service import transport
from service.config.celeryconfig import build_config
from service.config.settings import FleetSettings, get_settings

TASK_MODULES = (
    "service.tasks.diagnostics",
    "service.tasks.email",
    "service.tasks.reports",
    "service.tasks.analytics",
    "service.tasks.maintenance",
)


def create_app(settings: FleetSettings | None = None) -> Celery:
    settings = settings or get_settings()
    transport.register()
    celery_app = Celery("service", include=list(TASK_MODULES))
    celery_app.conf.update(build_config(settings))
    from service.tasks import beat
    from service.worker import hooks as worker_hooks

    celery_app.conf.beat_schedule = beat.schedule()
    worker_hooks.install(celery_app)
    return celery_app


app = create_app()
