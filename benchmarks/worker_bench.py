"""Side-by-side worker measurements: a plain Celery worker and a `fleet worker`, each on its own
private redis-server (so INFO commandstats counts one worker's commands), same machine, same
run, variants interleaved.

Messages are the ones each app's own producer writes: one task is published with the app
while nothing consumes, read back, and cloned with fresh ids, so a drain of N tasks is pushed
in one pipeline and times the worker, not the producer."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from harness import REPO, RedisServer, free_port, wait_until

from service.catalog.naming import unacked_key, wake_key

# Commands the benchmark itself sends (publishing, polling for the end), not the worker.
HARNESS_COMMANDS = {"lpush", "llen", "hlen", "info", "config|resetstat", "config"}
TRANSACTION = {"multi", "exec"}


@dataclass
class Variant:
    name: str
    fleet: bool
    env: dict[str, str] = field(default_factory=dict)

    @property
    def queue(self) -> str:
        return "default" if self.fleet else "celery"

    @property
    def noop(self) -> str:
        return "service.tasks.diagnostics.noop" if self.fleet else "bench.noop"

    @property
    def stamp(self) -> str:
        return "service.tasks.diagnostics.stamp" if self.fleet else "bench.stamp"


@dataclass
class RunningWorker:
    variant: Variant
    server: RedisServer
    client: redis.Redis
    process: subprocess.Popen[bytes]
    home: Path
    producer: Any
    template: dict[str, Any] | None = None
    list_key: str | None = None

    def log(self) -> str:
        path = self.home / "worker.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _producer(variant: Variant, url: str) -> Any:
    """The variant's app as a producer. Celery reads CELERY_BROKER_URL from the environment
    when it builds its producer pool, so build that pool with the variant's URL set."""
    saved = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = url
    try:
        if variant.fleet:
            from service.app_factory import create_app
            from service.config.settings import FleetSettings

            app = create_app(FleetSettings())
        else:
            from celery import Celery

            app = Celery("plain-producer", broker=url)
            app.conf.update(
                task_serializer="json",
                accept_content=["json"],
                # Stock kombu even after service.transport registered itself for redis://.
                broker_transport="kombu.transport.redis:Transport",
            )
        app.producer_pool  # noqa: B018 - built now, with this URL
        return app
    finally:
        if saved is not None:
            os.environ["CELERY_BROKER_URL"] = saved


def start(variant: Variant, tmp: Path, concurrency: int = 2) -> RunningWorker:
    home = tmp / f"{variant.name}-{uuid.uuid4().hex[:6]}"
    home.mkdir(parents=True)
    (home / "redis").mkdir()
    server = RedisServer(free_port(), home / "redis").start()
    url = server.url
    env = {
        **os.environ,
        "CELERY_BROKER_URL": url,
        "CELERY_RESULT_BACKEND": url,
        "PYTHONUNBUFFERED": "1",
        **variant.env,
    }
    if not variant.fleet and "PLAIN_RESULTS" not in variant.env:
        env.pop("CELERY_RESULT_BACKEND")
    if variant.fleet:
        env.update(
            {
                "FLEET_METRICS_DIR": str(home / "metrics"),
                "FLEET_METRICS_PORT": str(free_port()),
                "FLEET_HEARTBEAT_FILE": str(home / "heartbeat" / "worker.beat"),
            }
        )
        args = [sys.executable, "-m", "service", "worker", "-Q", "default", "-c", str(concurrency)]
    else:
        args = [
            sys.executable, "-m", "celery", "-A", "benchmarks.plain_app", "worker",
            "-P", "prefork", "-c", str(concurrency),
            "--loglevel", env.get("PLAIN_LOGLEVEL", "INFO"),
        ]  # fmt: skip
    with open(home / "worker.log", "wb") as log:
        process = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    client = redis.Redis.from_url(url)
    worker = RunningWorker(variant, server, client, process, home, _producer(variant, url))
    _capture_template(worker)
    return worker


def _capture_template(worker: RunningWorker) -> None:
    """Publish one no-op with the app, take it back before the worker does, and keep it as
    the template of every drained message; then wait for a stamp task to run (warm)."""
    client = worker.client
    # The worker may already consume: publish until we win the race, at most a few times.
    for _ in range(200):
        worker.producer.send_task(worker.variant.noop, args=[None])
        for key in queue_keys(worker.variant.queue):
            raw = client.rpop(key)
            if raw is not None:
                worker.template = json.loads(raw)
                worker.list_key = key
                break
        if worker.template is not None:
            break
    assert worker.template is not None, "could not capture a message template"
    stamp_key = f"bench:warm:{uuid.uuid4().hex}"
    worker.producer.send_task(worker.variant.stamp, args=[stamp_key])
    client.lpush(wake_key(worker.variant.queue), "1")  # stock producers do not ring
    try:
        wait_until(lambda: client.llen(stamp_key) > 0, 60, message=f"{worker.variant.name} ready")
    except AssertionError:
        raise AssertionError(worker.log()[-4000:]) from None


def stop(worker: RunningWorker) -> None:
    import signal

    try:
        os.killpg(worker.process.pid, signal.SIGTERM)
        worker.process.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(10)
    worker.server.stop()
    shutil.rmtree(worker.home / "redis", ignore_errors=True)


def _clone(template: dict[str, Any]) -> bytes:
    task_id = str(uuid.uuid4())
    message = json.loads(json.dumps(template))
    message["headers"]["id"] = task_id
    message["headers"]["root_id"] = task_id
    message["properties"]["correlation_id"] = task_id
    message["properties"]["delivery_tag"] = str(uuid.uuid4())
    return json.dumps(message).encode()


def commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def commandstats_usec(client: redis.Redis) -> dict[str, int]:
    """Microseconds Redis spent per command (INFO commandstats `usec`): its CPU for them."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["usec"]) for name, v in stats.items()}


def redis_cpu_seconds(client: redis.Redis) -> float:
    """User + system CPU of the redis-server process so far (INFO cpu)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def worker_commands(stats: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in stats.items() if k not in HARNESS_COMMANDS}


def queue_keys(queue: str) -> list[str]:
    """kombu's priority sub-lists of a queue (steps 0, 3, 6, 9 in both apps)."""
    return [queue, *(f"{queue}\x06\x16{step}" for step in (3, 6, 9))]


def _remaining(client: redis.Redis, queue: str) -> int:
    keys = queue_keys(queue)
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.llen(key)
        pipe.hlen("unacked")  # plain Celery's records
        pipe.hlen(unacked_key(queue))  # the fleet transport's
        return int(sum(pipe.execute()))


@dataclass
class Drain:
    tasks_per_second: float
    commands_per_task: float
    by_command: dict[str, float]
    # Redis server CPU per task (INFO cpu: user + sys of the worker's private redis-server
    # over the drain, the harness' pushes and polls included alike on both sides), and the
    # commandstats usec by command (a script's or a transaction's commands count inside it
    # and again on their own, so these do not add up to the CPU).
    cpu_usec_per_task: float = 0.0
    usec_by_command: dict[str, float] = field(default_factory=dict)


def drain(worker: RunningWorker, n: int) -> Drain:
    client = worker.client
    assert worker.template is not None and worker.list_key is not None
    messages = [_clone(worker.template) for _ in range(n)]
    client.config_resetstat()
    cpu_before = redis_cpu_seconds(client)
    started = time.perf_counter()
    with client.pipeline(transaction=False) as pipe:
        for message in messages:
            pipe.lpush(worker.list_key, message)
            # What the fleet producer sends with every message (a stray list for plain).
            pipe.lpush(wake_key(worker.variant.queue), "1")
        pipe.execute()
    try:
        wait_until(lambda: _remaining(client, worker.variant.queue) == 0, 300, interval=0.01)
    except AssertionError:
        raise AssertionError(worker.log()[-4000:]) from None
    elapsed = time.perf_counter() - started
    cpu = redis_cpu_seconds(client) - cpu_before
    stats = worker_commands(commandstats(client))
    usec = worker_commands(commandstats_usec(client))
    total = sum(v for k, v in stats.items() if k not in TRANSACTION)
    return Drain(
        n / elapsed,
        total / n,
        {k: round(v / n, 2) for k, v in sorted(stats.items(), key=lambda kv: -kv[1])},
        cpu * 1e6 / n,
        {k: round(v / n, 2) for k, v in sorted(usec.items(), key=lambda kv: -kv[1])},
    )


def idle_commands_per_second(worker: RunningWorker, seconds: float) -> tuple[float, dict[str, int]]:
    client = worker.client
    client.config_resetstat()
    time.sleep(seconds)
    stats = worker_commands(commandstats(client))
    return sum(stats.values()) / seconds, stats


def pickup_latency_ms(worker: RunningWorker, samples: int, gap: float) -> list[float]:
    """Publish a stamp task to the idle worker, wait for it to run, repeat."""
    client = worker.client
    latencies = []
    for _ in range(samples):
        key = f"bench:stamp:{uuid.uuid4().hex}"
        sent = time.time()
        worker.producer.send_task(worker.variant.stamp, args=[key])
        wait_until(lambda k=key: client.llen(k) > 0, 30, interval=0.001, message="stamp")
        ran = float(client.lindex(key, 0) or 0)
        latencies.append((ran - sent) * 1000)
        client.delete(key)
        time.sleep(gap)
    return latencies


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)
