"""The Celery application class, and how far ahead a task may be scheduled.

The app itself is assembled above every layer it plugs in: service.app_factory."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from service.catalog.queues import CATALOG
from service.config.settings import FleetSettings
from service.errors import EtaBeyondVisibility


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
