"""Analytics tasks: aggregate events into Redis, and enrich them through an external API
under a cluster-wide rate limit."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from celery import shared_task

from service.config.redis_client import broker_redis
from service.config.settings import get_settings
from service.errors import PermanentTaskError, TransientTaskError
from service.tasks.base import FleetTask
from service.tasks.ratelimit import ClusterRateLimiter

EXTERNAL_API_LIMIT_NAME = "external-api"
# The server times of the latest grants (newest last), so anyone can check the limit held;
# trimmed so it never grows with the number of calls.
EXTERNAL_CALLS_KEY = "fleet:analytics:external-calls"
EXTERNAL_CALLS_KEPT = 1000


@shared_task(base=FleetTask, name="service.tasks.analytics.aggregate_events")
def aggregate_events(events: list[dict[str, Any]], bucket: str) -> dict[str, int]:
    """Count events per type into the Redis hash `fleet:analytics:<bucket>` (one MULTI)."""
    counts: dict[str, int] = {}
    for event in events:
        kind = event.get("type")
        if not isinstance(kind, str):
            raise PermanentTaskError(f"event without a string 'type': {event!r}"[:200])
        counts[kind] = counts.get(kind, 0) + 1
    with broker_redis().pipeline(transaction=True) as pipe:
        for kind, n in counts.items():
            pipe.hincrby(f"fleet:analytics:{bucket}", kind, n)
        pipe.execute()
    return counts


def _limiter() -> ClusterRateLimiter:
    settings = get_settings()
    return ClusterRateLimiter(
        broker_redis(),
        EXTERNAL_API_LIMIT_NAME,
        settings.external_api_limit,
        settings.external_api_window_seconds,
    )


@shared_task(
    base=FleetTask,
    name="service.tasks.analytics.enrich_event",
    bind=True,
    max_retries=50,  # waiting for a rate-limit slot is not a failure of the call itself
)
def enrich_event(self: FleetTask, event_id: str, api_url: str) -> dict[str, Any]:
    """Fetch `api_url?event=<id>` at most `FLEET_EXTERNAL_API_LIMIT` times per window
    across ALL workers (Celery's `rate_limit` only limits one worker)."""
    decision = _limiter().try_acquire()
    if not decision.allowed:
        raise self.retry(countdown=decision.retry_after, exc=None)
    record = broker_redis().pipeline(transaction=False)
    record.rpush(EXTERNAL_CALLS_KEY, decision.at)
    record.ltrim(EXTERNAL_CALLS_KEY, -EXTERNAL_CALLS_KEPT, -1)
    record.execute()
    try:
        with urllib.request.urlopen(f"{api_url}?event={event_id}", timeout=10) as response:
            payload: dict[str, Any] = json.loads(response.read() or b"{}")
    except OSError as exc:
        raise TransientTaskError(f"external API unreachable: {type(exc).__name__}") from None
    return payload
