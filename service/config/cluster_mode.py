"""What runs on Redis Cluster today, and the one clear refusal for what does not.

On a cluster URL (service.config.redis_url) the DLQ store and every `fleet dlq` command, the
exporter, the cluster-wide rate limiter and the tasks' own Redis keys work. Celery itself
does not yet: the broker transport (publish, pop, ack, restore, wake), the result backend,
and what rides on the broker (beat's sends, task events and Flower, `celery
inspect`/`control` broadcasts). Stock kombu would fail there with a CROSSSLOT traceback
deep inside a worker; this says so instead, naming the variable: `fleet worker|beat|flower`
exit 2 before Celery starts, and anything else that would use the broker or the result
backend on a cluster URL (`celery inspect`, `celery control`, `celery events`, a producer's
`apply_async`, a result's `.get()`) raises ClusterModeUnsupported when it connects. The
app itself still loads: the DLQ CLI reads its task registry."""

from __future__ import annotations

from typing import Any

from kombu import transport as kombu_transport
from kombu.transport import base as kombu_base

from service.config.redis_url import CLUSTER_SCHEMES, is_cluster_url
from service.config.settings import FleetSettings
from service.errors import ClusterModeUnsupported

WORKS_ON_A_CLUSTER = "`fleet dlq`, `fleet exporter` and the cluster-wide rate limiter"


def refusal(variable: str) -> str:
    return (
        f"{variable} is a Redis Cluster URL: Celery's broker transport and result backend "
        "do not run on Redis Cluster in this release (stock kombu fails there: its keys of "
        "one queue hash to different slots). Point workers, beat, Flower, producers and "
        "`celery inspect`/`control` at a redis:// or rediss:// URL; "
        f"{WORKS_ON_A_CLUSTER} work on the cluster (see README, Scaling past one Redis)."
    )


def celery_refusal(settings: FleetSettings) -> str | None:
    """Why Celery (worker, beat, Flower, inspect/control, a producer) cannot use these
    settings, or None when it can."""
    urls = (
        ("CELERY_BROKER_URL", settings.broker_url.get_secret_value()),
        ("CELERY_RESULT_BACKEND", settings.result_backend_url),
    )
    for variable, url in urls:
        if is_cluster_url(url):
            return refusal(variable)
    return None


class RefusedClusterTransport(kombu_base.Transport):
    """What kombu loads for a cluster broker URL: it refuses, with the reason, as soon as a
    connection is made (kombu instantiates the transport class on first use; before that
    it reads class attributes such as `can_parse_url`, hence the kombu base class)."""

    driver_type = driver_name = "redis"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ClusterModeUnsupported(refusal("CELERY_BROKER_URL"))


class RefusedClusterResultBackend:
    """What Celery loads for a cluster result backend URL: refuses when first used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ClusterModeUnsupported(refusal("CELERY_RESULT_BACKEND"))


def register_refusals(loader: Any) -> None:
    """Cluster schemes name the refusing transport and result backend in this process (the
    app factory calls this; the cluster transport replaces it when it lands)."""
    backends = dict(loader.override_backends)  # a class attribute: never mutate it in place
    for scheme in CLUSTER_SCHEMES:
        kombu_transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:RefusedClusterTransport"
        backends[scheme] = f"{__name__}:RefusedClusterResultBackend"
    loader.override_backends = backends
