"""The worker's signal handlers: per-queue settings at start, publish headers, task metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from reprlib import repr as short_repr
from typing import Any

from celery import current_app, signals
from celery.utils.dispatch import Signal

from service.catalog.naming import SENT_AT_HEADER
from service.catalog.queues import CATALOG, PRIORITY_STEPS
from service.catalog.routing import queue_for_delivery, tasks_served
from service.config.settings import get_settings
from service.dlq.parking import initialise_parked
from service.redaction import redact_call
from service.worker.logs import configure_logging
from service.worker.metrics import task_metrics
from service.worker.metrics_server import serve_worker_metrics

_started_at: dict[str, float] = {}


def apply_queue_defaults(conf: Any, options: dict[str, Any]) -> None:
    """Concurrency, prefetch and time limits of the queues this worker consumes, unless given
    on the command line. Several queues: the most generous limits (never kill earlier than
    any of them allows) and the smallest prefetch."""
    raw = options.get("queues") or []
    names = raw.split(",") if isinstance(raw, str) else list(raw)
    specs = [CATALOG.get(n.strip()) for n in names if n.strip()]
    if not specs:  # no -Q: Celery consumes the default queue
        specs = [CATALOG.get(CATALOG.default_queue)]
    if options.get("concurrency") is None:
        conf.worker_concurrency = max(s.concurrency for s in specs)
    if options.get("prefetch_multiplier") is None:
        conf.worker_prefetch_multiplier = min(s.prefetch_multiplier for s in specs)
    # The transport refills the prefetch in batches of this many (service.transport.channel):
    # half the messages prefetched beyond one per process, so every process keeps one.
    concurrency = int(options.get("concurrency") or getattr(conf, "worker_concurrency", 1) or 1)
    multiplier = int(
        options.get("prefetch_multiplier") or getattr(conf, "worker_prefetch_multiplier", 1) or 1
    )
    transport_options = dict(getattr(conf, "broker_transport_options", None) or {})
    transport_options["fleet_refill_batch"] = max(1, (concurrency * (multiplier - 1) + 1) // 2)
    conf.broker_transport_options = transport_options
    if options.get("soft_time_limit") is None:
        conf.task_soft_time_limit = max(s.soft_time_limit for s in specs)
    if options.get("time_limit") is None:
        conf.task_time_limit = max(s.hard_time_limit for s in specs)


def _on_worker_init(sender: Any = None, conf: Any = None, options: Any = None, **_: Any) -> None:
    apply_queue_defaults(conf, dict(options or {}))


def _destination_queue(declare: Any, routing_key: str | None) -> str | None:
    for queue in declare or ():
        name = getattr(queue, "name", None)
        if name in CATALOG:
            return str(name)
    return routing_key if routing_key in CATALOG else None


def _on_before_publish(
    body: Any = None,
    headers: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    declare: Any = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())
        _redact_kwargsrepr(body, headers)
    if properties is None:
        return
    queue = _destination_queue(declare, routing_key)
    if queue is not None and not CATALOG.get(queue).supports_priority:
        # One FIFO list for queues that do not honour priorities.
        properties["priority"] = PRIORITY_STEPS[0]


_imported_task_modules = False


def _registered_task(app: Any, name: str) -> Any:
    """The task object, importing the app's task modules once: a producer that only calls
    send_task() by name has not imported them, and the signature names the arguments."""
    global _imported_task_modules
    if name not in app.tasks and not _imported_task_modules:
        _imported_task_modules = True
        app.loader.import_default_modules()
    return app.tasks.get(name)


def _redact_kwargsrepr(body: Any, headers: dict[str, Any]) -> None:
    """Celery logs and Flower show `argsrepr`/`kwargsrepr`: make them the masked views of
    the arguments (positional ones masked by their parameter's name)."""
    if not (isinstance(body, tuple | list) and len(body) == 3 and isinstance(body[1], dict)):
        return
    name = headers.get("task")
    task = _registered_task(current_app, name) if isinstance(name, str) else None
    run = getattr(task, "run", None)
    args = body[0] if isinstance(body[0], list | tuple) else []
    masked_args, masked_kwargs = redact_call(run, args, body[1], get_settings().sensitive_keys)
    headers["argsrepr"] = short_repr(masked_args)
    headers["kwargsrepr"] = short_repr(masked_kwargs)


def _task_queue(task: Any) -> str:
    return queue_for_delivery(getattr(task.request, "delivery_info", None))


def _on_prerun(task_id: str = "", task: Any = None, **_: Any) -> None:
    now = time.time()
    _started_at[task_id] = now
    headers = getattr(task.request, "headers", None) or {}
    sent = getattr(task.request, SENT_AT_HEADER, None) or headers.get(SENT_AT_HEADER)
    wait = None
    if sent is not None:
        eta = getattr(task.request, "eta", None)
        # A countdown/ETA task waits on purpose: measure from its due time instead.
        ready_at = float(sent)
        if eta:
            ready_at = max(ready_at, datetime.fromisoformat(str(eta)).timestamp())
        wait = max(0.0, now - ready_at)
    task_metrics.started(_task_queue(task), task.name, wait)


def _on_postrun(task_id: str = "", task: Any = None, **_: Any) -> None:
    started = _started_at.pop(task_id, None)
    duration = time.time() - started if started is not None else None
    task_metrics.finished(_task_queue(task), task.name, duration)


def _on_success(sender: Any = None, **_: Any) -> None:
    task_metrics.succeeded(_task_queue(sender), sender.name)


def _on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    task_metrics.failed(_task_queue(sender), sender.name, type(exception).__name__)


def _on_retry(sender: Any = None, **_: Any) -> None:
    task_metrics.retried(_task_queue(sender), sender.name)


def _on_worker_start(sender: Any = None, **_: Any) -> None:
    if sender is not None:
        initialise_task_metrics(sender.app)
    port = get_settings().metrics_port
    if port:
        serve_worker_metrics(port)


def initialise_task_metrics(app: Any) -> None:
    """Every (queue, task) this worker serves starts at 0. Runs once, in the main process
    before the pool forks (worker_init), so it costs the tasks nothing."""
    queues = app.amqp.queues
    consumed = queues.consume_from or queues  # None: Celery consumes every declared queue
    names = [name for name in app.tasks if not name.startswith("celery.")]
    task_metrics.initialise(
        (queue, task)
        for queue in consumed
        if queue in CATALOG
        for task in tasks_served(queue, names)
    )
    initialise_parked([queue for queue in consumed if queue in CATALOG])


def _on_setup_logging(**_: Any) -> None:
    # Connecting to setup_logging tells Celery not to configure logging itself.
    configure_logging(get_settings())


# Every Celery signal the worker (and any producer) connects to, and its handler. The app
# factory connects them (service.app_factory.EXTENSIONS).
SIGNAL_HANDLERS: tuple[tuple[Signal, Callable[..., None]], ...] = (
    (signals.setup_logging, _on_setup_logging),
    (signals.celeryd_init, _on_worker_init),
    (signals.worker_init, _on_worker_start),
    (signals.before_task_publish, _on_before_publish),
    (signals.task_prerun, _on_prerun),
    (signals.task_postrun, _on_postrun),
    (signals.task_success, _on_success),
    (signals.task_failure, _on_failure),
    (signals.task_retry, _on_retry),
)


def connect_signals() -> None:
    for signal, handler in SIGNAL_HANDLERS:
        signal.connect(handler, weak=False)
