"""The Celery app, assembled: `celery -A service worker -Q <queue>` loads `service.app`.

The factory stands above every layer it plugs into Celery, so the layers below never import
the app (or each other upward): each offers its piece, and EXTENSIONS below is the one list
of how celery-fleet extends Celery and kombu. Nothing else registers with them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from celery import Celery

from service import task_names, transport
from service.config.celeryconfig import build_config
from service.config.cluster_mode import register_cluster
from service.config.settings import FleetSettings, get_settings
from service.dlq import listeners
from service.dlq.capture import capture_raw
from service.dlq.consumer import FleetConsumer
from service.dlq.request import FleetRequest
from service.results import backends as result_backends
from service.tasks import beat
from service.transport import events as transport_events
from service.transport.quarantine import send_poison_to
from service.worker import hooks
from service.worker.heartbeat import HeartbeatStep
from service.worker.metrics import redelivered, task_metrics

TASK_MODULES = (
    "service.tasks.diagnostics",
    "service.tasks.email",
    "service.tasks.reports",
    "service.tasks.analytics",
    "service.tasks.maintenance",
)


@dataclass(frozen=True)
class Extension:
    """One way celery-fleet extends Celery or kombu: where, with what, and how it is put in."""

    point: str
    piece: object
    # None: the piece is set where Celery reads it, named in `point` (a class attribute).
    install: Callable[[Celery, FleetSettings], None] | None


def _use_fleet_consumer(app: Celery, settings: FleetSettings) -> None:
    # Celery resolves worker_consumer with symbol_by_name, which passes a class through
    # (celery/worker/components.py, Consumer.create -> instantiate).
    app.conf.worker_consumer = FleetConsumer


def _count_dlq_events() -> None:
    listeners.on_dead_lettered(task_metrics.dead_lettered)
    listeners.on_expired(task_metrics.expired)


def _registered_names(app: Celery) -> Callable[[], Iterable[str]]:
    def names() -> Iterable[str]:
        app.loader.import_default_modules()
        return list(app.tasks)

    return names


# Order matters once: the transport is registered before the app first connects.
EXTENSIONS: tuple[Extension, ...] = (
    Extension(
        "kombu transport for redis:// and rediss:// (an alias kombu resolves by path)",
        transport.Transport,
        lambda app, settings: transport.register(),
    ),
    Extension(
        "kombu transport for rediscluster:// and redisscluster:// URLs (per-queue hash tags, "
        "service.transport.cluster_channel); results there disabled with a clear message "
        "(service.config.cluster_mode)",
        register_cluster,
        lambda app, settings: register_cluster(app.loader),
    ),
    Extension(
        "result backends: Redis and PostgreSQL classes that mask stored records, and the "
        "validated URL pinned (service.results.backends)",
        result_backends.BACKEND_CLASSES,
        lambda app, settings: result_backends.install(app, settings.result_backend_url),
    ),
    Extension(
        "transport: where bytes that are not a message go (quarantine, then the DLQ)",
        capture_raw,
        lambda app, settings: send_poison_to(capture_raw),
    ),
    Extension(
        "DLQ: who counts each dead-lettered or expired message (the worker's metrics)",
        task_metrics.dead_lettered,
        lambda app, settings: _count_dlq_events(),
    ),
    Extension(
        "transport: who counts messages put back on their queue (the worker's metrics)",
        redelivered,
        lambda app, settings: transport_events.on_redelivered(redelivered),
    ),
    Extension(
        "task names that may become metric labels and DLQ index keys",
        task_names.use,
        lambda app, settings: task_names.use(_registered_names(app)),
    ),
    Extension(
        "worker_consumer: screens every message, dead-letters poison",
        FleetConsumer,
        _use_fleet_consumer,
    ),
    Extension(
        "Task.Request, set on FleetTask (service/tasks/base.py): dead-letters hard time-limit "
        "kills",
        FleetRequest,
        None,
    ),
    Extension(
        "signals: queue defaults, publish headers, task metrics, logging",
        hooks.SIGNAL_HANDLERS,
        lambda app, settings: hooks.connect_signals(),
    ),
    Extension(
        "consumer bootstep: the liveness heartbeat file",
        HeartbeatStep,
        lambda app, settings: app.steps["consumer"].add(HeartbeatStep),
    ),
    Extension(
        "beat_schedule: the periodic tasks",
        beat.schedule,
        lambda app, settings: app.conf.update(beat_schedule=beat.schedule()),
    ),
)


def create_app(settings: FleetSettings | None = None) -> Celery:
    settings = settings or get_settings()
    celery_app = Celery("service", include=list(TASK_MODULES))
    celery_app.conf.update(build_config(settings))
    for extension in EXTENSIONS:
        if extension.install is not None:
            extension.install(celery_app, settings)
    return celery_app


app = create_app()
