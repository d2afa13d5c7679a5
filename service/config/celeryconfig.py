"""Celery configuration built from settings and the catalog. Each default says why."""

from __future__ import annotations

from typing import Any

from service.catalog.naming import BEAT_KEY_PREFIX, BEAT_LOCK_KEY
from service.catalog.queues import CATALOG, Priority, QueueCatalog
from service.catalog.routing import CatalogRouter, build_task_queues
from service.config.redis_url import is_cluster_url, node_url
from service.config.settings import FleetSettings


def transport_options(settings: FleetSettings) -> dict[str, Any]:
    return {
        # Only kombu's global unacked records (stock clients, the previous release) wait for
        # it; the fleet transport's messages are owned (fleet_dead_owner_timeout).
        "visibility_timeout": settings.visibility_timeout,
        # Per-priority Redis sub-lists; lower number pops first.
        "queue_order_strategy": "priority",
        "priority_steps": list(settings.priority_steps),
        "sep": settings.priority_sep,
        # Messages of a dead worker come back after fleet_dead_owner_timeout + this sweep period.
        # kombu's default sweep runs every 10 s x throttle 10 = 100 s; one sweep per interval.
        "unacked_restore_interval": settings.unacked_restore_interval,
        "unacked_restore_throttle": 1,
        # A worker killed while sweeping holds the sweep mutex until it expires (default 300s).
        "unacked_mutex_expire": settings.unacked_mutex_expire,
        # service.transport: how long an idle worker blocks before polling anyway.
        "fleet_idle_timeout": settings.idle_poll_seconds,
        # service.transport: a consumer whose heartbeat is older than this is dead.
        "fleet_dead_owner_timeout": settings.dead_owner_timeout_seconds,
        # service.transport.replicated: WAIT for replicas after each publish (0: off).
        "fleet_publish_wait_replicas": settings.publish_wait_replicas,
        "fleet_publish_wait_timeout_ms": settings.publish_wait_timeout_ms,
    }


def result_backend_config(settings: FleetSettings) -> dict[str, Any]:
    """Where opted-in results are stored; the broker, DLQ and exporter stay on Redis."""
    if settings.result_backend_kind == "redis":
        return {
            "result_backend": settings.result_backend_url,
            # The result backend honours visibility_timeout too; keep it identical.
            "result_backend_transport_options": dict(transport_options(settings)),
            # Compressed payloads (kombu codecs): less Redis memory, which the broker needs.
            "result_compression": settings.result_compression,
        }
    return {
        "result_backend": settings.result_backend_url,
        # Celery's defaults (pre-ping, recycle hourly) plus a small pool: a prefork child
        # runs one task at a time, so connections = processes x pool size at most; and a
        # connect timeout, so an unreachable database fails a store (retried) instead of
        # hanging the task. The worker's main process uses no pool (SessionManager).
        "database_engine_options": {
            "pool_pre_ping": True,
            "pool_recycle": 3600,
            "pool_size": settings.result_db_pool_size,
            "max_overflow": 0,
            "connect_args": {"connect_timeout": settings.result_db_connect_timeout},
        },
        # No connection at app start (a producer that never stores a result never connects);
        # Celery still creates its tables the first time a process opens a session.
        "database_create_tables_at_setup": False,
        # One pooled session per child, not one per store (Celery's default, kept explicit).
        "database_short_lived_sessions": False,
        # Celery retries a store 3 times within milliseconds by default, then the result is
        # lost (BackendStoreError): retry with backoff through a database restart instead.
        **_store_retries(settings.result_db_retry_seconds),
    }


# Backoff between store attempts: Celery sleeps a random time up to
# min(max, base * 2**attempt) (full jitter), so one attempt every ~2.5 s on average once capped.
_RETRY_BASE_MS = 100
_RETRY_MAX_MS = 5000


def _store_retries(seconds: int) -> dict[str, Any]:
    """Celery's result_backend_* retry settings that keep retrying for about `seconds`."""
    attempts, expected_ms = 0, 0.0
    while expected_ms < seconds * 1000:
        attempts += 1
        expected_ms += min(_RETRY_MAX_MS, _RETRY_BASE_MS * 2**attempts) / 2
    return {
        "result_backend_always_retry": True,
        "result_backend_max_retries": attempts,
        "result_backend_base_sleep_between_retries_ms": _RETRY_BASE_MS,
        "result_backend_max_sleep_between_retries_ms": _RETRY_MAX_MS,
    }


def build_config(settings: FleetSettings, catalog: QueueCatalog = CATALOG) -> dict[str, Any]:
    options = transport_options(settings)
    return {
        "broker_url": settings.broker_url.get_secret_value(),
        **result_backend_config(settings),
        "broker_transport_options": options,
        "broker_connection_retry_on_startup": True,
        # Never give up on the broker: a worker must outlive a Redis outage and resume on
        # its own (it retries about once a second, service.dlq.consumer); Celery's default,
        # 100 attempts, would exit after ~100 s. A worker stuck reconnecting stops touching
        # its heartbeat file, so the liveness probe still replaces it if that lasts.
        "broker_connection_max_retries": None,
        # JSON only: pickle from an untrusted broker is remote code execution.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Ack after the task ran, so a crash re-delivers instead of losing the message.
        "task_acks_late": True,
        # A child killed mid-task (OOM, hard limit) re-queues the message rather than acking.
        "task_reject_on_worker_lost": True,
        # One reserved message per process by default: fair dispatch for long tasks;
        # per-queue values are applied when a worker starts (service.worker.hooks).
        "worker_prefetch_multiplier": 1,
        # Recycle children to bound leaks in long-lived processes.
        "worker_max_tasks_per_child": settings.max_tasks_per_child,
        "worker_max_memory_per_child": settings.max_memory_per_child_kb,
        # No global time limits: they would become task attributes and beat the per-queue
        # limits the worker sets at start (service.worker.hooks.apply_queue_defaults).
        # Results are stored only for tasks that opt in (`ignore_result=False` on the task or
        # the call): a stored result costs GET + SETEX + PUBLISH per task, for nobody when
        # the caller never reads it. Stored ones expire after a day: no unbounded growth
        # (Redis: key TTL; PostgreSQL: beat's daily `celery.backend_cleanup`). Extended
        # records (name, args, kwargs, worker, queue) are masked like DLQ entries
        # (service.results.masking).
        "task_ignore_result": True,
        "result_expires": settings.result_expires,
        "result_extended": True,
        # A typo in a queue name is an error, not a silently created queue nobody consumes.
        "task_create_missing_queues": False,
        "task_queues": build_task_queues(catalog),
        # worker_consumer (the DLQ's screening consumer) is set by service.app_factory.
        "task_default_queue": catalog.default_queue,
        "task_default_exchange": catalog.get(catalog.default_queue).exchange,
        "task_default_routing_key": catalog.get(catalog.default_queue).routing_key,
        "task_routes": (CatalogRouter(catalog),),
        # Unset priority would mean 0 (most urgent) on Redis; make "normal" the default.
        "task_default_priority": int(Priority.NORMAL),
        # Per-task options without touching task code (the decorator is the other way):
        # aggregation is cheap but hammers Redis, so cap it per worker.
        "task_annotations": {
            "service.tasks.analytics.aggregate_events": {"rate_limit": "50/s"},
        },
        "task_send_sent_event": False,
        # Off: the STARTED write happens before the task body, outside its error handling;
        # a broker blip there makes Celery fail the task without running it and ACK the
        # message (lost). Measured in fault test R2.
        "task_track_started": False,
        # Flower builds its task views from these events; each task then costs 3 PUBLISH
        # (received, started, succeeded) and the worker publishes a heartbeat every 2 s.
        "worker_send_task_events": settings.task_events,
        # Keep Celery from hijacking the root logger; we configure JSON logs ourselves.
        "worker_hijack_root_logger": False,
        # Let running tasks finish through a broker blip rather than killing them half-way;
        # their acks cannot reach the new connection, so the copy kombu restores after the
        # visibility timeout runs again: tasks must be idempotent either way.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "timezone": "UTC",
        "enable_utc": True,
        **beat_config(settings),
    }


def beat_config(settings: FleetSettings) -> dict[str, Any]:
    """Beat keeps its schedule (each entry's last run) in the broker's Redis and runs only
    while it holds a lock there (celery-redbeat): a restarted or rescheduled beat resumes
    the schedule instead of starting it afresh, and a second beat waits instead of sending
    every periodic task twice."""
    broker = settings.broker_url.get_secret_value()
    cluster = is_cluster_url(broker)
    return {
        "beat_scheduler": "redbeat.RedBeatScheduler",
        # On Redis Cluster redbeat makes a RedisCluster client of the one-node URL form; its
        # pipelines are not transactions there, and each of its commands touches one key.
        "redbeat_redis_url": node_url(broker) if cluster else broker,
        # Explicit, so redbeat never forwards the broker's transport options to its client.
        "redbeat_redis_options": {"cluster": True} if cluster else {},
        "redbeat_key_prefix": BEAT_KEY_PREFIX,
        "redbeat_lock_key": BEAT_LOCK_KEY,
        "redbeat_lock_timeout": settings.beat_lock_timeout,
        # How often the active beat wakes (and extends the lock), and how often a waiting one
        # tries to take it: the takeover after a beat's death is at most lock timeout + this.
        "beat_max_loop_interval": settings.beat_max_loop_seconds,
    }
