"""Redis Cluster URLs for Celery: the broker transport that runs there, and the clear refusal
of what cannot.

A `rediscluster://` or `redisscluster://` broker URL selects the cluster transport
(service.transport.cluster_channel): workers, producers, beat's sends, task events, Flower
and `celery inspect`/`control` run on the cluster. Beat's schedule and lock (redbeat) use a
RedisCluster client of the same URL (service.config.celeryconfig).

Stored results cannot live on a cluster: Celery's Redis result backend issues commands
over several keys (a chord's counters and its result set, GET of many results), which a
cluster refuses with CROSSSLOT. A cluster URL in CELERY_RESULT_BACKEND is refused at start
by the settings; left unset with a cluster broker, results are disabled, and a task or
caller that stores or reads one gets ClusterModeUnsupported naming CELERY_RESULT_BACKEND
and the alternatives, never a CROSSSLOT traceback."""

from __future__ import annotations

from typing import Any

from celery.backends.base import DisabledBackend
from kombu import transport as kombu_transport

from service.config.redis_url import CLUSTER_SCHEMES, is_cluster_url
from service.config.settings import FleetSettings
from service.errors import ClusterModeUnsupported

RESULTS_ON_A_CLUSTER = (
    "CELERY_RESULT_BACKEND: stored results cannot live on Redis Cluster (Celery's Redis "
    "result backend uses commands over several keys, which a cluster refuses). Set "
    "CELERY_RESULT_BACKEND to a PostgreSQL URL (db+postgresql://...) or to a separate "
    "single Redis (redis:// or rediss://); see README, Scaling past one Redis"
)


def celery_refusal(settings: FleetSettings) -> str | None:
    """Why Celery (worker, beat, Flower, inspect/control, a producer) cannot use these
    settings, or None when it can. A cluster broker can; a cluster result backend is
    refused by the settings already (this stays as the one place to add a refusal)."""
    if settings.result_backend is not None and is_cluster_url(settings.result_backend_url):
        return RESULTS_ON_A_CLUSTER
    return None


class ClusterResultsDisabled(DisabledBackend):
    """What Celery loads for results when the broker is a cluster and CELERY_RESULT_BACKEND
    is unset: tasks that ignore results (the default) run; storing or reading a result
    raises ClusterModeUnsupported with the alternatives."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ClusterModeUnsupported(RESULTS_ON_A_CLUSTER)

    store_result = ensure_chords_allowed = _refuse
    get_state = get_status = get_result = get_traceback = _refuse
    get_task_meta_for = wait_for = get_many = _refuse

    def as_uri(self, *args: Any, **kwargs: Any) -> str:
        return "disabled://"


def register_cluster(loader: Any) -> None:
    """Cluster schemes name the cluster transport and the disabled result backend in this
    process (the app factory calls this)."""
    backends = dict(loader.override_backends)  # a class attribute: never mutate it in place
    for scheme in CLUSTER_SCHEMES:
        kombu_transport.TRANSPORT_ALIASES[scheme] = (
            "service.transport.cluster_channel:ClusterTransport"
        )
        backends[scheme] = f"{__name__}:ClusterResultsDisabled"
    loader.override_backends = backends
