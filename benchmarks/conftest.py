"""Fixtures for `make bench`: a private redis-server on a free port (never the machine's
6379), started in pytest_configure so that the service's settings, read once and cached,
point at it before anything imports them. A missing redis-server skips locally and FAILS
when `CI` is set, as in tests/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

# tests/ is on sys.path through pyproject's `pythonpath`: reuse its redis-server wrapper.
from harness import discard_redis, need_redis, start_session_redis

_SESSION: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("FLEET_LOG_FORMAT", "json")
    os.environ.pop("FLEET_DLQ_URL", None)
    # Nothing listens on port 1: without our own server, nothing can reach a shared Redis.
    url = "redis://127.0.0.1:1/0"
    if shutil.which("redis-server"):
        server = start_session_redis("fleet-bench-redis-")
        _SESSION["server"] = server
        url = server.url
    os.environ["CELERY_BROKER_URL"] = url
    os.environ["CELERY_RESULT_BACKEND"] = url


def pytest_terminal_summary(terminalreporter: Any) -> None:
    import results

    path = results.write()
    if path is not None:
        terminalreporter.write_sep("=", "celery-fleet benchmark figures")
        terminalreporter.write_line(results.table())
        terminalreporter.write_line(f"written to {path}")


def pytest_unconfigure(config: pytest.Config) -> None:
    server = _SESSION.pop("server", None)
    if server is not None:
        discard_redis(server)


@pytest.fixture(scope="session")
def redis_url() -> str:
    server = _SESSION.get("server")
    need_redis(server is not None, "redis-server is not installed")
    return str(server.url)


@pytest.fixture(scope="session")
def redis_db(redis_url: str) -> Iterator[Callable[[int], redis.Redis]]:
    """Clients for numbered databases of the private server, each emptied when made and at
    the end: one database per data set, so one benchmark's keys never skew another's."""
    clients: list[redis.Redis] = []

    def connect(db: int) -> redis.Redis:
        # A URL's own database number wins over a `db=` argument; replace it.
        client = redis.Redis.from_url(f"{redis_url.rsplit('/', 1)[0]}/{db}")
        client.flushdb()
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.flushdb()
        client.close()
