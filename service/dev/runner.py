"""`fleet dev`'s main loop: start the stack, show it live, stop it cleanly, summarise.

Signals only append to a list (Event.set() or logging inside a handler can deadlock); the
loop polls it. A first Ctrl-C/SIGTERM/SIGHUP stops everything in order, a second one kills what is
left at once. Exit 0 after a requested stop, 1 when a component died or could not start."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape

from service.config.redis_client import connect
from service.config.settings import FleetSettings, get_settings
from service.dev.observe import Observer, Snapshot
from service.dev.outcome import outcomes
from service.dev.ports import plan_ports
from service.dev.processes import ProcessSet, log_tail
from service.dev.report import final_view, summary
from service.dev.run import Options, Run
from service.dev.stack import (
    FLOWER_USER,
    REPO,
    Stack,
    StartupError,
    redis_answers,
    start_apps,
    start_redis,
)
from service.dev.stubs import start_stubs
from service.dev.view import endpoints_table, live_view, plain_lines
from service.dev.workload import Workload
from service.dlq.reader import DLQReader

WORKER_READY_TIMEOUT = 90.0
PLAIN_EVERY = 5.0  # seconds between blocks of plain lines (not a terminal)
APPS = ("worker", "beat", "exporter", "flower", "prometheus")


def _start(run: Run) -> Stack:
    settings, options = run.settings, run.options
    broker_url = settings.broker_url.get_secret_value()
    reuse = redis_answers(broker_url)
    plan = plan_ports(options.ports, skip=frozenset({"redis"}) if reuse else frozenset())
    if not reuse:
        broker_url = start_redis(run.processes, plan["redis"])
    stack = Stack(run.processes, plan, broker_url, own_redis=not reuse)
    try:
        run.stubs = start_stubs(plan["smtp"], plan["external_api"])
    except OSError as exc:  # lost a race for the port with another program
        raise StartupError(f"could not start the SMTP/API stand-ins: {exc}") from None
    start_apps(stack, run.stubs.smtp_port)
    run.console.print(
        endpoints_table(stack.endpoints, run.home, f"{FLOWER_USER} / {stack.flower_password}")
    )
    run.console.print("dashboards: import dashboards/*.json into a Grafana pointed at Prometheus")
    return stack


def _dlq_reader(settings: FleetSettings, broker_url: str) -> DLQReader:
    url = settings.dlq_url.get_secret_value() if settings.dlq_url else broker_url
    return DLQReader(connect(url, socket_timeout=5, socket_connect_timeout=2))


def _wait_for_worker(run: Run, observer: Observer) -> bool:
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    with run.console.status("waiting for the worker to answer on /metrics"):
        while time.monotonic() < deadline:
            if run.interrupted() or run.died():
                return False
            if observer.snapshot().workers_alive:
                return True
            time.sleep(0.3)
    run.failure = {"component": "worker", "error": "no /metrics after 90 s"}
    run.stopped_by = "component did not start"
    worker = run.processes.components["worker"]
    run.console.print(f"[bold red]worker not ready after 90 s[/]; last lines of {worker.log}:")
    run.console.print(log_tail(worker.log), markup=False, highlight=False, soft_wrap=True)
    return False


def _watch(run: Run, observer: Observer) -> Snapshot:
    """Refresh the view about once a second until the duration ends, a signal, or a death."""
    start = time.monotonic()
    deadline = None if run.options.duration is None else start + run.options.duration
    title = "celery-fleet dev (Ctrl-C stops it)"
    terminal = run.console.is_terminal
    last_plain = -PLAIN_EVERY
    snapshot = observer.snapshot()
    # Transient: the final figures replace the live table when the run ends.
    with Live(console=run.console, auto_refresh=False, transient=True) as live:
        while True:
            elapsed = time.monotonic() - start
            if terminal:
                live.update(live_view(snapshot, elapsed, title, run.notes(snapshot)), refresh=True)
            elif elapsed - last_plain >= PLAIN_EVERY:
                last_plain = elapsed
                for line in plain_lines(snapshot, elapsed, run.notes(snapshot)):
                    run.console.print(line, markup=False, highlight=False, soft_wrap=True)
            tick = time.monotonic() + 1.0
            while time.monotonic() < tick:
                if run.interrupted() or run.died():
                    return observer.snapshot()
                if deadline is not None and time.monotonic() >= deadline:
                    return observer.snapshot()
                time.sleep(0.1)
            snapshot = observer.snapshot()


def run(settings: FleetSettings, options: Options) -> int:
    console = Console(stderr=options.json_summary)
    if not console.is_terminal:  # a log or a pipe: wide enough that tables stay readable
        console = Console(stderr=options.json_summary, width=160)
    home = Path(tempfile.mkdtemp(prefix="fleet-dev-"))
    state = Run(options, settings, console, home, ProcessSet(home, REPO))

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        state.signals.append(signum)

    # SIGHUP too: the children run in their own sessions, so a closed terminal reaches
    # only us, and we must take them down with us.
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, on_signal) for s in handled}
    stop = threading.Event()
    final: Snapshot | None = None
    designed: list[dict[str, Any]] = []
    try:
        state.stack = stack = _start(state)
        os.environ.update(
            CELERY_BROKER_URL=stack.broker_url, CELERY_RESULT_BACKEND=stack.broker_url
        )
        get_settings.cache_clear()  # this process's settings now name the dev broker
        # Imported here, not at the top: importing it builds the module's app from the
        # settings of that moment, which must already name the dev broker.
        from service.app_factory import create_app

        app = create_app(FleetSettings())
        dlq = _dlq_reader(settings, stack.broker_url)
        observer = Observer(
            [stack.worker_metrics_url],
            stack.exporter_url,
            dlq,
            stack.prometheus_url,
            broker=connect(stack.broker_url, socket_timeout=5),
            since=time.time(),
            rate_window=settings.external_api_window_seconds,
        )
        if _wait_for_worker(state, observer):
            if options.demo and state.stubs is not None:
                state.workload = Workload(app, state.stubs.api_url)
                args = (stop, options.rate)
                threading.Thread(target=state.workload.run, args=args, daemon=True).start()
            final = _watch(state, observer)
            stop.set()
            if state.workload is not None:
                designed = outcomes(state.workload.designed, dlq, app)
    except StartupError as exc:
        state.stopped_by = "startup failed"
        state.failure = {"error": str(exc)}
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    except Exception as exc:  # still stop everything and report, never a bare traceback
        if state.failure is None:
            state.stopped_by = "error"
            state.failure = {"error": f"{type(exc).__name__}: {exc}"}
        console.print(f"[bold red]error:[/] {escape(repr(exc))}", highlight=False)
    finally:
        stop.set()
        console.print("stopping (Ctrl-C again to kill at once)...")
        state.processes.stop([APPS, ("redis",)], force=lambda: len(state.signals) >= 2)
        if state.stubs is not None:
            state.stubs.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    code = 1 if state.failure else 0
    _report(state, final, designed, code)
    return code


def _report(state: Run, final: Snapshot | None, designed: list[dict[str, Any]], code: int) -> None:
    if final is not None:
        elapsed = time.monotonic() - state.started_at
        state.console.print(final_view(final, designed, elapsed, state.notes(final)))
    state.console.print(f"stopped ({state.stopped_by}); logs kept in {state.home}")
    if state.options.json_summary:
        print(json.dumps(summary(state, final, designed, code), indent=2, sort_keys=True))
