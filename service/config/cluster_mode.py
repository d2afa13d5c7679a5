"""What runs on Redis Cluster today, and the one clear refusal for what does not.

On a cluster URL (service.config.redis_url) the DLQ store and every `fleet dlq` command, the
exporter, the cluster-wide rate limiter and the tasks' own Redis keys work. Celery itself
does not yet: the broker transport (publish, pop, ack, restore, wake), the result backend,
and what rides on the broker (beat's sends, task events and Flower, `celery
inspect`/`control` broadcasts). Stock kombu would fail there with a CROSSSLOT traceback
deep inside a worker; this says so at start instead, naming the variable."""

from __future__ import annotations

from service.config.redis_url import is_cluster_url
from service.config.settings import FleetSettings
from service.errors import ClusterModeUnsupported

WORKS_ON_A_CLUSTER = "`fleet dlq`, `fleet exporter` and the cluster-wide rate limiter"


def celery_refusal(settings: FleetSettings) -> str | None:
    """Why Celery (worker, beat, Flower, inspect/control, a producer) cannot use these
    settings, or None when it can."""
    urls = (
        ("CELERY_BROKER_URL", settings.broker_url.get_secret_value()),
        ("CELERY_RESULT_BACKEND", settings.result_backend_url),
    )
    for variable, url in urls:
        if is_cluster_url(url):
            return (
                f"{variable} is a Redis Cluster URL: Celery's broker transport and result "
                "backend do not run on Redis Cluster in this release (stock kombu fails there "
                "with CROSSSLOT). Point workers, beat, Flower and `celery inspect`/`control` "
                f"at a redis:// or rediss:// URL; {WORKS_ON_A_CLUSTER} work on the cluster "
                "(see README, Scaling past one Redis)."
            )
    return None


def refuse_celery_on_cluster(settings: FleetSettings) -> None:
    refusal = celery_refusal(settings)
    if refusal is not None:
        raise ClusterModeUnsupported(refusal)
