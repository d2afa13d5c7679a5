"""Fixtures: real redis-server processes and real `celery worker` subprocesses.

The session's redis-server starts in pytest_configure, before test modules import the
service, so `service.app` and every worker talk to it (never to the machine's 6379).
`REDIS_URL` overrides it. A missing redis-server skips locally and FAILS when `CI` is set."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from harness import (
    REPO,
    RedisServer,
    Worker,
    discard_redis,
    free_port,
    need_redis,
    require_binary,
    start_session_redis,
    wait_until,
)

_SESSION: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("FLEET_LOG_FORMAT", "json")
    url = os.environ.get("REDIS_URL")
    if url is None and shutil.which("redis-server"):
        server = start_session_redis("fleet-redis-")
        _SESSION["server"] = server
        url = server.url
    if url is None:
        url = _redis_from_docker()
    if url is not None:
        os.environ["CELERY_BROKER_URL"] = url
        os.environ["CELERY_RESULT_BACKEND"] = url
    _SESSION["url"] = url


def _redis_from_docker() -> str | None:
    """No redis-server binary: use testcontainers, but only where a Docker engine answers."""
    try:
        import docker
        from testcontainers.redis import RedisContainer

        docker.from_env().ping()
    except Exception:
        return None
    container = RedisContainer("redis:7").start()
    _SESSION["container"] = container
    host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
    return f"redis://{host}:{port}/0"


def pytest_unconfigure(config: pytest.Config) -> None:
    container = _SESSION.get("container")
    if container is not None:
        container.stop()
    server = _SESSION.get("server")
    if server is not None:
        discard_redis(server)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = _SESSION.get("url")
    need_redis(url is not None, "redis-server is not installed and REDIS_URL is unset")
    return str(url)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """The session Redis, emptied before each test so tests never see each other's state."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Private redis-servers for tests that kill or restart Redis."""
    require_binary("redis-server")
    servers: list[RedisServer] = []

    def make(appendonly: bool = False) -> RedisServer:
        data_dir = tmp_path / f"redis-{len(servers)}"
        data_dir.mkdir()
        server = RedisServer(free_port(), data_dir, appendonly=appendonly).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(signal.SIGKILL)


@pytest.fixture
def worker_factory(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., Worker]]:
    """Start real workers; waits until each consumes (heartbeat file written); always stops
    them and prints their logs on failure."""
    workers: list[Worker] = []

    def start(
        queues: str = "default",
        *extra: str,
        broker_url: str | None = None,
        env: dict[str, str | None] | None = None,
        concurrency: int | None = 2,
        wait: bool = True,
        timeout: float = 30,
        prefix: Sequence[str] = (),
        mingle: bool = False,
    ) -> Worker:
        index = len(workers)
        name = f"w{index}-{os.getpid()}"
        home = tmp_path / name
        home.mkdir()
        heartbeat = home / "heartbeat" / "worker.beat"
        metrics_port = free_port()
        child_env = dict(os.environ)
        child_env.update(
            {
                "CELERY_BROKER_URL": broker_url or redis_url,
                "CELERY_RESULT_BACKEND": broker_url or redis_url,
                "FLEET_METRICS_DIR": str(home / "metrics"),
                "FLEET_METRICS_PORT": str(metrics_port),
                "FLEET_HEARTBEAT_FILE": str(heartbeat),
                "FLEET_HEARTBEAT_INTERVAL": "0.5",
                # Tests wait for Celery's per-task lines ("received"); off by default.
                "FLEET_LOG_EVERY_TASK": "true",
                "FLEET_REPORTS_DIR": str(home / "reports"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        for key, value in (env or {}).items():  # None: unset in the worker's environment
            if value is None:
                child_env.pop(key, None)
            else:
                child_env[key] = value
        args = [
            *prefix,
            sys.executable,
            "-m",
            "service",
            "worker",
            "-Q",
            queues,
            "--hostname",
            f"{name}@%h",
            "--without-gossip",
        ]
        if not mingle:  # off in tests for a quick start; on by default in Celery
            args.append("--without-mingle")
        if concurrency is not None:
            args += ["-c", str(concurrency)]
        args += list(extra)
        log_path = home / "worker.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                args,
                cwd=REPO,
                env=child_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(name, process, log_path, heartbeat, metrics_port, child_env)
        workers.append(worker)
        if wait:
            try:
                wait_until(
                    lambda: heartbeat.exists() or not worker.alive(),
                    timeout,
                    message=f"worker {name} to consume",
                )
            except AssertionError:
                raise AssertionError(f"worker {name} did not start:\n{worker.log()}") from None
            if not worker.alive():
                raise AssertionError(f"worker {name} exited at start:\n{worker.log()}")
        return worker

    yield start
    for worker in workers:
        worker.stop(timeout=20)
    for worker in workers:
        sys.stdout.write(f"\n----- log of {worker.name} -----\n{worker.log()[-6000:]}\n")


@pytest.fixture
def celery_app(redis_client: redis.Redis) -> Any:
    """The service's Celery app as a producer, pointed at the session Redis. Tests read the
    results of what they send, so their calls opt in to storing results (the shipped
    default ignores them)."""
    from celery import signals

    from service import app

    signals.before_task_publish.connect(_store_results, weak=False, dispatch_uid="tests-results")
    return app


def _store_results(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None and headers.get("ignore_result") is None:
        headers["ignore_result"] = False
