"""The Celery application: `celery -A service worker -Q <queue>` loads `service.app`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from service import transport
from service.catalog.queues import CATALOG
from service.config.celeryconfig import build_config
from service.config.cluster_mode import register_refusals
from service.config.settings import FleetSettings, get_settings
from service.errors import EtaBeyondVisibility
from service.results import backends as result_backends

TASK_MODULES = (
    "service.tasks.diagnostics",
    "service.tasks.email",
    "service.tasks.reports",
    "service.tasks.analytics",
    "service.tasks.maintenance",
)


def max_delay_seconds(settings: FleetSettings) -> float:
    """How far ahead a countdown/ETA may be. A worker holds a delayed message unacked until
    it is due and then runs it; Redis re-delivers anything unacked for longer than the
    visibility timeout, so due time plus the longest run must fit inside it."""
    if settings.allow_short_visibility_timeout:  # tests with a visibility timeout of seconds
        return settings.visibility_timeout / 2
    return float(settings.visibility_timeout - CATALOG.max_hard_time_limit())


def _delay(countdown: Any, eta: Any) -> float:
    delay = float(countdown) if countdown is not None else 0.0
    if eta is not None:
        moment = eta if isinstance(eta, datetime) else datetime.fromisoformat(str(eta))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delay = max(delay, moment.timestamp() - time.time())
    return delay


class FleetCelery(Celery):
    """Refuses, at send time, a countdown/ETA that would run the task more than once."""

    fleet_max_delay: float = float("inf")

    def send_task(self, name: str, *args: Any, **options: Any) -> Any:
        # send_task(name, args, kwargs, countdown, eta, ...): apply_async and retry come here.
        countdown = args[2] if len(args) > 2 else options.get("countdown")
        eta = args[3] if len(args) > 3 else options.get("eta")
        delay = _delay(countdown, eta)
        if delay > self.fleet_max_delay:
            raise EtaBeyondVisibility(
                f"{name}: countdown/ETA {delay:.0f}s ahead exceeds the {self.fleet_max_delay:.0f}s "
                "a delayed task can wait in a worker (FLEET_VISIBILITY_TIMEOUT minus the longest "
                "hard time limit); Redis would re-deliver it and it would run more than once. "
                "Schedule it with beat, or raise FLEET_VISIBILITY_TIMEOUT."
            )
        return super().send_task(name, *args, **options)


def create_app(settings: FleetSettings | None = None) -> Celery:
    settings = settings or get_settings()
    transport.register()
    celery_app = FleetCelery("service", include=list(TASK_MODULES))
    register_refusals(celery_app.loader)
    celery_app.fleet_max_delay = max_delay_seconds(settings)
    celery_app.conf.update(build_config(settings))
    # Result records are masked before any backend stores them (service.results.masking).
    result_backends.install(celery_app, settings.result_backend_url)
    from service.tasks import beat
    from service.worker import hooks as worker_hooks

    celery_app.conf.beat_schedule = beat.schedule()
    worker_hooks.install(celery_app)
    return celery_app


app = create_app()
