"""Names derived from a queue name, and the fleet's ports. Every consumer (service, infra,
dashboards, tests) calls or imports these; nothing types them twice."""

from __future__ import annotations

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


# Celery beat's schedule and lock in Redis (celery-redbeat; service.config.celeryconfig).
# redbeat derives every key from the prefix: the entries `fleet:beat:<entry name>` (hashes:
# definition and last run), `fleet:beat::schedule` (zset: entry key by next run time),
# `fleet:beat::statics` (set: entries the code defines) and the lock below.
BEAT_KEY_PREFIX = "fleet:beat:"
# Held by the one active beat, extended every loop, expiring after FLEET_BEAT_LOCK_TIMEOUT.
BEAT_LOCK_KEY = f"{BEAT_KEY_PREFIX}lock"


def beat_entry_key(entry: str) -> str:
    """The hash redbeat keeps one schedule entry in (its definition and `last_run_at`)."""
    return f"{BEAT_KEY_PREFIX}{entry}"


def beat_schedule_key() -> str:
    """The sorted set of entry keys by next run time (redbeat: prefix + ':schedule')."""
    return f"{BEAT_KEY_PREFIX}:schedule"
