"""`fleet dev`: the whole stack on a laptop. A Redis (started if none answers), one worker for
every catalog queue, beat, the exporter, Flower, a Prometheus with the alert rules when the
binary is installed, and a demo workload; Ctrl-C (or --duration) stops all of it."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis

from service.naming import EXPORTER_PORT, FLOWER_PORT, REDIS_PORT, WORKER_METRICS_PORT
from service.queues import CATALOG, Priority
from service.settings import FleetSettings

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Ports:
    redis: int = REDIS_PORT
    worker_metrics: int = WORKER_METRICS_PORT
    exporter: int = EXPORTER_PORT
    flower: int = FLOWER_PORT
    prometheus: int = 9090


@dataclass
class DevStack:
    settings: FleetSettings
    ports: Ports
    home: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - owned by the child
        self.processes[name] = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        """Everything but Redis first (workers finish and ack their tasks), then Redis."""
        apps = [p for name, p in self.processes.items() if name != "redis"]
        for group in (apps, [self.processes[n] for n in ("redis",) if n in self.processes]):
            for process in group:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in group:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)

    def dead(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _broker(stack: DevStack) -> str:
    url = stack.settings.broker_url.get_secret_value()
    if _answers(url):
        return url
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "no Redis answers at CELERY_BROKER_URL and redis-server is not "
            "installed (apt-get install redis-server, or run make setup)"
        )
    port = stack.ports.redis
    if not _port_free(port):
        raise SystemExit(f"port {port} is taken but no Redis answers there")
    data = stack.home / "redis"
    data.mkdir()
    stack.spawn(
        "redis",
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--dir",
            str(data),
        ],
        dict(os.environ),
    )
    url = f"redis://127.0.0.1:{port}/0"
    if not _wait_for(lambda: _answers(url), 10):
        raise SystemExit("redis-server did not start; see " + str(stack.home / "redis.log"))
    return url


def _prometheus_config(stack: DevStack) -> Path:
    # JSON is valid YAML: no YAML library needed in the service.
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": sorted(str(p) for p in (REPO / "alerts").glob("*.yaml")),
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in (
                ("celery-workers", stack.ports.worker_metrics),
                ("celery-exporter", stack.ports.exporter),
            )
        ],
    }
    path = stack.home / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def start(stack: DevStack) -> None:
    url = _broker(stack)
    host = urlsplit(url).hostname
    env = dict(
        os.environ,
        CELERY_BROKER_URL=url,
        CELERY_RESULT_BACKEND=url,
        FLEET_LOG_FORMAT=os.environ.get("FLEET_LOG_FORMAT", "text"),
        FLEET_METRICS_DIR=str(stack.home / "metrics"),
        FLEET_METRICS_PORT=str(stack.ports.worker_metrics),
        FLEET_HEARTBEAT_FILE=str(stack.home / "heartbeat" / "worker.beat"),
        FLEET_BEAT_SCHEDULE_FILE=str(stack.home / "beat" / "schedule"),
        FLEET_REPORTS_DIR=str(stack.home / "reports"),
        FLEET_FLOWER_PORT=str(stack.ports.flower),
    )
    fleet = [sys.executable, "-m", "service"]
    stack.spawn("worker", [*fleet, "worker", "-Q", ",".join(CATALOG.names), "-c", "2"], env)
    stack.spawn("beat", [*fleet, "beat"], env)
    stack.spawn(
        "exporter",
        [*fleet, "exporter", "--port", str(stack.ports.exporter), "--address", "127.0.0.1"],
        env,
    )
    stack.spawn("flower", [*fleet, "flower", "--address=127.0.0.1"], env)
    stack.urls = {
        "broker": f"redis://{host}:{urlsplit(url).port}",
        "worker metrics": f"http://127.0.0.1:{stack.ports.worker_metrics}/metrics",
        "exporter": f"http://127.0.0.1:{stack.ports.exporter}/metrics",
        "flower": f"http://127.0.0.1:{stack.ports.flower}/",
    }
    prometheus = shutil.which("prometheus")
    if prometheus is not None and _port_free(stack.ports.prometheus):
        stack.spawn(
            "prometheus",
            [
                prometheus,
                f"--config.file={_prometheus_config(stack)}",
                f"--storage.tsdb.path={stack.home / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{stack.ports.prometheus}",
            ],
            dict(os.environ),
        )
        stack.urls["prometheus"] = f"http://127.0.0.1:{stack.ports.prometheus}/alerts"
    os.environ.update(CELERY_BROKER_URL=url, CELERY_RESULT_BACKEND=url)


def demo_workload(stop: threading.Event, rate: float = 2.0) -> None:
    """A mix a dashboard can show: successes, retries, dead letters, priorities, reports."""
    from service.celery_app import create_app

    app = create_app(FleetSettings())
    rng = random.Random(7)
    sent = 0
    while not stop.wait(1 / rate):
        sent += 1
        roll = rng.random()
        if roll < 0.6:
            app.send_task(
                "service.tasks.diagnostics.noop",
                args=[sent],
                priority=int(rng.choice(list(Priority))),
            )
        elif roll < 0.7:
            app.send_task("service.tasks.diagnostics.flaky", args=[f"demo-{sent}", 1])
        elif roll < 0.75:
            app.send_task("service.tasks.diagnostics.fail", args=[f"demo failure {sent}"])
        elif roll < 0.9:
            events = [{"type": rng.choice(["click", "view", "buy"])} for _ in range(20)]
            app.send_task("service.tasks.analytics.aggregate_events", args=[events, "demo"])
        else:
            app.send_task(
                "service.tasks.reports.generate_custom_report", args=[{"name": f"demo-{sent % 5}"}]
            )


def run(
    settings: FleetSettings,
    ports: Ports,
    duration: float | None,
    demo: bool,
    report: Callable[[dict[str, str], Path], None],
) -> int:
    home = Path(tempfile.mkdtemp(prefix="fleet-dev-"))
    stack = DevStack(settings, ports, home)
    stop = threading.Event()  # for the demo thread; set only outside the signal handler
    # A plain flag: Event.set() inside a handler can deadlock against Event.wait().
    terminated: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _: terminated.append(signum))
    try:
        start(stack)
        report(stack.urls, home)
        if demo:
            threading.Thread(target=demo_workload, args=(stop,), daemon=True).start()
        deadline = None if duration is None else time.monotonic() + duration
        while not terminated:
            time.sleep(0.5)
            if stack.dead():
                print(
                    f"stopped early: {', '.join(stack.dead())} exited (logs in {home})",
                    file=sys.stderr,
                )
                return 1
            if deadline is not None and time.monotonic() > deadline:
                break
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        stack.stop()
    return 0
