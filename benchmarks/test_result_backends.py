"""What a stored result costs per task, for each result backend, side by side (R1-R3).

The worker stores an opted-in result with one `backend.store_result(...)` call after the
task body (the same call Celery's tracer makes); a caller reads it with `get_task_meta`.
Measured in this process against a private redis-server and a private PostgreSQL server
(tests/postgres_server.py), with a report-like result (~4 KB of JSON) and
`result_extended` on, as the fleet ships it:

- redis: `FleetRedisBackend` (masked) and Celery's plain `RedisBackend` (the masking's cost);
- redis + gzip: the same with FLEET_RESULT_COMPRESSION=gzip (Redis memory per result);
- postgresql: `FleetDatabaseBackend` (SQLAlchemy + psycopg 3, one pooled connection).

Rounds are interleaved (each round stores BENCH_RESULTS results with every backend in turn)
and each figure is the median of per-round ratios, so load on a shared machine hits every
backend alike. Absolute times are in the figures' detail, for the README's table."""

from __future__ import annotations

import functools
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import results
from celery import states
from celery.app.task import Context
from celery.backends.redis import RedisBackend
from postgres_server import PostgresServer, start_postgres

STORES = int(os.environ.get("BENCH_RESULTS", "300"))
ROUNDS = int(os.environ.get("BENCH_RESULT_ROUNDS", "5"))
TASK = "service.tasks.diagnostics.until_fixed"
REPORT = {
    "report": "monthly",
    "rows": [{"region": f"r{i}", "orders": i * 7, "revenue": i * 12.5} for i in range(80)],
}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres(durable=True)  # fsync on: a commit costs what it costs in production
    yield server
    server.discard()


def _app(monkeypatch: pytest.MonkeyPatch, broker: str, backend: str, **env: str) -> Any:
    from service.app_factory import create_app
    from service.config.settings import load_settings

    with monkeypatch.context() as patch:
        patch.setenv("CELERY_BROKER_URL", broker)
        patch.setenv("CELERY_RESULT_BACKEND", backend)
        for name, value in env.items():
            patch.setenv(name, value)
        app = create_app(load_settings())
    return app


def _request(task_id: str) -> Context:
    return Context(
        id=task_id,
        task=TASK,
        args=["run", "hunter2"],
        kwargs={},
        hostname="bench@host",
        retries=0,
        delivery_info={"routing_key": "default"},
    )


def _store(backend: Any) -> tuple[float, str]:
    task_id = str(uuid.uuid4())
    started = time.perf_counter()
    backend.store_result(task_id, REPORT, states.SUCCESS, request=_request(task_id))
    return time.perf_counter() - started, task_id


def _read(backend: Any, task_id: str) -> float:
    started = time.perf_counter()
    assert backend.get_task_meta(task_id, cache=False)["status"] == states.SUCCESS
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def backends(redis_url: str, postgres: PostgresServer) -> Iterator[dict[str, Callable[[], Any]]]:
    monkeypatch = pytest.MonkeyPatch()
    base = redis_url.rsplit("/", 1)[0]
    plain_url, masked_url, gzip_url = f"{base}/4", f"{base}/5", f"{base}/6"
    apps = {
        "redis": _app(monkeypatch, plain_url, masked_url),
        "redis-gzip": _app(monkeypatch, plain_url, gzip_url, FLEET_RESULT_COMPRESSION="gzip"),
        "postgresql": _app(monkeypatch, plain_url, postgres.result_backend),
    }
    made = {name: app.backend for name, app in apps.items()}
    # What a prefork pool child has: Celery pools connections only after a fork
    # (SessionManager.forked, set by an after-fork hook); the main process uses NullPool,
    # a new connection and password exchange per store.
    made["postgresql"].session_manager.forked = True
    made["redis-unmasked"] = RedisBackend(app=apps["redis"], url=plain_url)
    for url in (plain_url, masked_url, gzip_url):
        redis.Redis.from_url(url).flushdb()
    yield {name: functools.partial(_same, backend) for name, backend in made.items()}
    monkeypatch.undo()


def _same(value: Any) -> Any:
    return value


def _measure(backends: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Per round, the backends take turns store by store (the order rotating each round),
    so a burst of load on the machine hits every backend alike; each sample is a round's
    mean time per store (and per read of 50 of those results)."""
    names = list(backends)
    store: dict[str, list[float]] = {n: [] for n in names}
    read: dict[str, list[float]] = {n: [] for n in names}
    for round_no in range(ROUNDS):
        shift = round_no % len(names)
        order = names[shift:] + names[:shift]
        spent = dict.fromkeys(names, 0.0)
        ids: dict[str, list[str]] = {n: [] for n in names}
        for _ in range(STORES):
            for name in order:
                seconds, task_id = _store(backends[name]())
                spent[name] += seconds
                ids[name].append(task_id)
        reading = dict.fromkeys(names, 0.0)
        for index in range(50):
            for name in order:
                reading[name] += _read(backends[name](), ids[name][index])
        for name in names:
            store[name].append(spent[name] / STORES)
            read[name].append(reading[name] / 50)
    return {"store": store, "read": read}


def _ratio(samples: dict[str, list[float]], name: str, baseline: str) -> float:
    return statistics.median(a / b for a, b in zip(samples[name], samples[baseline], strict=True))


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def _redis_bytes(backend: Any, client: redis.Redis) -> float:
    keys = client.keys("celery-task-meta-*")[:50]
    return statistics.median(int(client.memory_usage(k) or 0) for k in keys)


def test_cost_of_a_stored_result_per_backend(
    benchmark: Any, backends: dict[str, Callable[[], Any]], postgres: PostgresServer
) -> None:
    measured = benchmark.pedantic(_measure, args=(backends,), rounds=1, iterations=1)
    store, read = measured["store"], measured["read"]
    times = {name: {"store_ms": _ms(store[name]), "read_ms": _ms(read[name])} for name in store}
    pg_ratio = _ratio(store, "postgresql", "redis")
    mask_ratio = _ratio(store, "redis", "redis-unmasked")
    rows = int(postgres.psql("fleet_results", "SELECT count(*) FROM celery_taskmeta"))
    table_bytes = int(
        postgres.psql("fleet_results", "SELECT pg_total_relation_size('celery_taskmeta')")
    )
    sizes = {
        "redis_bytes_per_result": _redis_bytes(backends["redis"](), backends["redis"]().client),
        "redis_gzip_bytes_per_result": _redis_bytes(
            backends["redis-gzip"](), backends["redis-gzip"]().client
        ),
        "postgresql_bytes_per_row": round(table_bytes / max(rows, 1)),
    }
    results.record(
        "R1", "stored result: PostgreSQL / Redis (time per store)", pg_ratio, "<= 25",
        pg_ratio <= 25, per_backend=times, stores=STORES, rounds=ROUNDS, **sizes,
    )  # fmt: skip
    results.record(
        "R2", "stored result: masked / unmasked Redis record (time per store)", mask_ratio,
        "<= 1.5", mask_ratio <= 1.5,
    )  # fmt: skip
    gzip_share = sizes["redis_gzip_bytes_per_result"] / sizes["redis_bytes_per_result"]
    results.record(
        "R3", "Redis memory per result: gzip / uncompressed", gzip_share, "<= 0.6",
        gzip_share <= 0.6, time_ratio=round(_ratio(store, "redis-gzip", "redis"), 3),
    )  # fmt: skip
    benchmark.extra_info.update({"per_backend": times, **sizes})
    for key in ("R1", "R2", "R3"):
        results.check(key)
