"""Names derived from a queue name, the fleet's own Redis keys and message header, and its
ports. Every consumer (service, infra, dashboards, tests) calls or imports these; nothing
types them twice."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

# kombu's Redis transport defaults (kombu/transport/redis.py: DEFAULT_PRIORITY_STEPS, sep).
KOMBU_DEFAULT_SEP = "\x06\x16"
KOMBU_DEFAULT_PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)

# Ports: the worker's /metrics (FLEET_METRICS_PORT), the queue exporter's, Flower's, Redis'.
WORKER_METRICS_PORT = 9808
EXPORTER_PORT = 9809
FLOWER_PORT = 5555
REDIS_PORT = 6379


def k8s_name(queue: str) -> str:
    """DNS-1123 form of a queue name (Kubernetes forbids underscores)."""
    return queue.replace("_", "-")


def worker_deployment_name(queue: str) -> str:
    return f"celery-worker-{k8s_name(queue)}"


# A pool's PodDisruptionBudget and autoscaler (HPA or ScaledObject) carry its Deployment's
# name; dashboards and alerts find the HPA by it (KEDA prefixes `keda-hpa-`).
def worker_pdb_name(queue: str) -> str:
    return worker_deployment_name(queue)


def autoscaler_name(queue: str) -> str:
    return worker_deployment_name(queue)


def priority_list_key(queue: str, priority: int, sep: str = KOMBU_DEFAULT_SEP) -> str:
    """The Redis list kombu uses for one priority step of a queue (step 0 is the bare name)."""
    return queue if priority == 0 else f"{queue}{sep}{priority}"


def priority_list_keys(
    queue: str,
    steps: Sequence[int] = KOMBU_DEFAULT_PRIORITY_STEPS,
    sep: str = KOMBU_DEFAULT_SEP,
) -> list[str]:
    """Every Redis list that holds waiting messages of `queue`, most urgent first."""
    return [priority_list_key(queue, step, sep) for step in sorted(steps)]


def wake_key(queue: str) -> str:
    """List of wake-up tokens for idle workers of `queue` (service.transport)."""
    return f"fleet:wake:{queue}"


# Set on every message at publish (worker hooks), read by the exporter (age of the oldest
# waiting message) and the DLQ (checked on receipt, reset on replay).
SENT_AT_HEADER = "fleet_sent_at"

# Bytes a pop took from a queue's list that Redis' cjson cannot read wait here until the worker
# has decided (service.transport.quarantine): hash "<list key>|sha1" -> the bytes.
QUARANTINE_KEY = "fleet:quarantine"


def quarantine_field(list_key: str, item: bytes) -> str:
    return f"{list_key}|{hashlib.sha1(item).hexdigest()}"


def quarantine_list_key(field: str) -> str:
    """The list a quarantined item was popped from (the inverse of quarantine_field)."""
    return field.rsplit("|", 1)[0]
