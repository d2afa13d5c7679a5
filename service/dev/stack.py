"""Starts the dev stack's processes: Redis (unless one answers at CELERY_BROKER_URL), one
worker consuming every catalog queue, beat, the queue exporter, Flower (basic auth with a
generated password) and, when installed, Prometheus with the alert rules."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis

from service.catalog.queues import CATALOG
from service.dev.ports import PortPlan
from service.dev.processes import ProcessSet
from service.errors import FleetError

REPO = Path(__file__).resolve().parents[2]
FLOWER_USER = "fleet"
WORKER_CONCURRENCY = 2


class StartupError(FleetError):
    """A component could not start; the message says which and where its log is."""


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.RedisError, ValueError):
        return False


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


@dataclass
class Stack:
    processes: ProcessSet
    plan: PortPlan
    broker_url: str
    own_redis: bool
    flower_password: str = ""
    prometheus_url: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)

    @property
    def worker_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.plan['worker_metrics']}/metrics"

    @property
    def exporter_url(self) -> str:
        return f"http://127.0.0.1:{self.plan['exporter']}/metrics"


def start_redis(processes: ProcessSet, port: int) -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise StartupError(
            "no Redis answers at CELERY_BROKER_URL and redis-server is not installed "
            "(apt-get install redis-server, or run make setup)"
        )
    data = processes.home / "redis"
    data.mkdir(exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "yes", "--dir", str(data)]
    component = processes.spawn("redis", args, dict(os.environ))
    url = f"redis://127.0.0.1:{port}/0"
    if not wait_for(lambda: redis_answers(url) or component.exit_code() is not None, 15):
        raise StartupError(f"redis-server did not answer within 15 s; log: {component.log}")
    if component.exit_code() is not None:
        raise StartupError(f"redis-server exited with {component.exit_code()}")
    return url


def _prometheus_config(stack: Stack) -> Path:
    # JSON is valid YAML: no YAML library needed in the service.
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": sorted(str(p) for p in (REPO / "alerts").glob("*.yaml")),
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in (
                ("celery-workers", stack.plan["worker_metrics"]),
                ("celery-exporter", stack.plan["exporter"]),
            )
        ],
    }
    path = stack.processes.home / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def child_env(stack: Stack, smtp_port: int) -> dict[str, str]:
    home = stack.processes.home
    return dict(
        os.environ,
        CELERY_BROKER_URL=stack.broker_url,
        CELERY_RESULT_BACKEND=stack.broker_url,
        FLEET_LOG_FORMAT=os.environ.get("FLEET_LOG_FORMAT", "text"),
        FLEET_METRICS_DIR=str(home / "metrics"),
        FLEET_METRICS_PORT=str(stack.plan["worker_metrics"]),
        FLEET_HEARTBEAT_FILE=str(home / "heartbeat" / "worker.beat"),
        FLEET_REPORTS_DIR=str(home / "reports"),
        FLEET_FLOWER_PORT=str(stack.plan["flower"]),
        FLEET_SMTP_HOST="127.0.0.1",
        FLEET_SMTP_PORT=str(smtp_port),
    )


def start_apps(stack: Stack, smtp_port: int) -> None:
    """Everything but Redis. Flower's password goes through its environment only."""
    env = child_env(stack, smtp_port)
    spawn = stack.processes.spawn
    fleet = [sys.executable, "-m", "service"]
    queues = ",".join(CATALOG.names)
    spawn("worker", [*fleet, "worker", "-Q", queues, "-c", str(WORKER_CONCURRENCY)], env)
    spawn("beat", [*fleet, "beat"], env)
    exporter = [*fleet, "exporter", "--port", str(stack.plan["exporter"])]
    spawn("exporter", [*exporter, "--address", "127.0.0.1"], env)
    stack.flower_password = secrets.token_urlsafe(12)
    auth = f"{FLOWER_USER}:{stack.flower_password}"
    spawn(
        "flower",
        [*fleet, "flower", "--address=127.0.0.1"],
        {**env, "FLEET_FLOWER_BASIC_AUTH": auth},
    )
    broker = urlsplit(stack.broker_url)
    plan = stack.plan
    existing = "" if stack.own_redis else " (already running: the demo's data goes there)"
    stack.endpoints = {
        "broker": f"redis://{broker.hostname}:{broker.port or 6379}{plan.note('redis')}{existing}",
        "worker metrics": f"{stack.worker_metrics_url}{plan.note('worker_metrics')}",
        "exporter": f"{stack.exporter_url}{plan.note('exporter')}",
        "flower": f"http://127.0.0.1:{plan['flower']}/{plan.note('flower')}",
    }
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        stack.endpoints["prometheus"] = "not installed (apt-get install prometheus)"
        return
    args = [
        prometheus,
        f"--config.file={_prometheus_config(stack)}",
        f"--storage.tsdb.path={stack.processes.home / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{plan['prometheus']}",
    ]
    spawn("prometheus", args, dict(os.environ))
    stack.prometheus_url = f"http://127.0.0.1:{plan['prometheus']}"
    stack.endpoints["prometheus"] = f"{stack.prometheus_url}/alerts{plan.note('prometheus')}"
