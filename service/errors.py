"""One error hierarchy for the service; callers catch FleetError."""

from __future__ import annotations


class FleetError(Exception):
    """Base of every error celery-fleet raises on purpose."""


class CatalogError(FleetError, ValueError):
    """The queue catalog (or a lookup in it) is inconsistent. A ValueError too, so pydantic
    reports one raised inside a validator (the infra's stack config) as a validation error."""


class SettingsError(FleetError):
    """The environment holds an invalid setting; the message names the variable."""


class RoutingError(FleetError):
    """A task was sent somewhere the catalog does not know."""


class PermanentTaskError(FleetError):
    """A task failed in a way retrying cannot fix: it goes straight to the dead-letter queue."""


class TransientTaskError(FleetError):
    """A task failed in a way that may pass: it is retried with backoff."""


class RateLimitExceeded(TransientTaskError):
    """The cluster-wide rate limit is used up for the current window."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"rate limit {name!r} exhausted; retry in {retry_after:.2f}s")
        self.retry_after = retry_after


class DLQError(FleetError):
    """A dead-letter queue operation failed (unknown id, bad filter...)."""


class ClusterModeUnsupported(FleetError):
    """Something that cannot run on Redis Cluster in this release was pointed at one."""
