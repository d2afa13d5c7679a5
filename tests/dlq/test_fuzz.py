"""Property-based fuzzing of the worker with mutated real envelopes (tests/fuzz_envelopes.py)
pushed into a real queue under a real worker: every message ends in the DLQ or runs exactly
once, the worker stays up and keeps consuming, and nothing is left in flight once the
visibility timeout has passed.

One batch per run (a worker start per example would take minutes): `make test` draws a
fixed, derandomized batch; `make fuzz` draws a larger random one (FLEET_FUZZ_EXAMPLES,
FLEET_FUZZ_RANDOM=1). A failure lists each offending case's mutations."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from typing import Any

import redis
from fuzz_envelopes import CALLS_KEY, QUEUE, TASK, Case, _base, cases
from harness import unacked_count, wait_until
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from service.catalog.naming import quarantine_key
from service.dlq.access import dlq_reader
from service.dlq.reader import Filter

EXAMPLES = int(os.environ.get("FLEET_FUZZ_EXAMPLES", "40"))
RANDOM = os.environ.get("FLEET_FUZZ_RANDOM") == "1"
VISIBILITY = {
    "FLEET_VISIBILITY_TIMEOUT": "5",
    "FLEET_UNACKED_RESTORE_INTERVAL": "1",
    "FLEET_MAX_BODY_BYTES": "65536",
}


def draw_cases(count: int) -> list[Case]:
    drawn: list[Case] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        derandomize=not RANDOM,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases())
    def collect(case: Case) -> None:
        drawn.append(case)

    collect()
    return drawn


def _runs(client: redis.Redis) -> dict[str, int]:
    return {
        k.decode("utf-8", "surrogateescape"): int(v) for k, v in client.hgetall(CALLS_KEY).items()
    }


def _dead_lettered_text() -> str:
    return "\n".join(json.dumps(e) for e in dlq_reader().iter_entries(Filter()))


def _outcome(case: Case, runs: dict[str, int], dlq_text: str) -> tuple[int, bool]:
    ran = runs.get(case.task_id, 0) if case.task_id is not None else 0
    # Bytes that were not a kombu message are filed under a hash of themselves.
    raw_id = "raw-" + hashlib.sha256(case.raw).hexdigest()[:32]
    return ran, case.marker in dlq_text or raw_id in dlq_text


def test_mutated_envelopes_end_in_the_dlq_or_run_exactly_once(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    run_batch(draw_cases(EXAMPLES), celery_app, redis_client, worker_factory)


def test_mutated_envelopes_under_redis_faults_end_in_the_dlq_or_run(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    # Faults injected between the worker's steps: Redis full (noeviction) or paused for a
    # moment, at drawn times, while the batch is processed. A duplicate run is acceptable
    # under faults; a loss, a dead worker or an entry degraded by a fault is not.
    batch = draw_cases(max(10, EXAMPLES // 2))
    faults = draw_faults()
    redis_client.config_set("maxmemory-policy", "noeviction")
    stop = threading.Event()

    def inject() -> None:
        for kind, after, length in faults:
            if stop.wait(after):
                return
            if kind == "full":
                redis_client.config_set("maxmemory", 1)
                stop.wait(length)
                redis_client.config_set("maxmemory", 0)
            else:
                redis_client.execute_command("CLIENT", "PAUSE", int(length * 1000), "WRITE")
                stop.wait(length)

    injector = threading.Thread(target=inject, daemon=True)
    try:
        run_batch(batch, celery_app, redis_client, worker_factory, injector, exactly_once=False)
    finally:
        stop.set()
        injector.join(10)
        redis_client.config_set("maxmemory", 0)
    degraded = [e["id"] for e in dlq_reader().iter_entries(Filter()) if e.get("minimal")]
    assert not degraded, f"entries degraded by a transient fault: {degraded}"


def draw_faults() -> list[tuple[str, float, float]]:
    """(kind, seconds after the previous fault, length): four faults of 1-3 s."""
    drawn: list[list[tuple[str, float, float]]] = []
    fault = st.tuples(
        st.sampled_from(["full", "pause"]),
        st.floats(0.2, 2.0),
        st.floats(1.0, 3.0),
    )

    @settings(max_examples=1, database=None, derandomize=not RANDOM, phases=[Phase.generate])
    @given(st.lists(fault, min_size=4, max_size=4))
    def collect(value: list[tuple[str, float, float]]) -> None:
        drawn.append(value)

    collect()
    return drawn[0]


def run_batch(
    batch: list[Case],
    celery_app: Any,
    redis_client: redis.Redis,
    worker_factory: Any,
    injector: threading.Thread | None = None,
    exactly_once: bool = True,
) -> None:
    for case in batch:
        redis_client.lpush(QUEUE, case.raw)
    worker = worker_factory(QUEUE, env=VISIBILITY)
    if injector is not None:
        injector.start()

    def unresolved() -> list[Case]:
        runs, text = _runs(redis_client), _dead_lettered_text()
        return [c for c in batch if _outcome(c, runs, text) == (0, False)]

    # Unresolved cases are reported below, with their mutations, rather than as a timeout.
    patience = 20 + EXAMPLES // 4 + (0 if injector is None else 60)
    _wait_quietly(lambda: not worker.alive() or not unresolved(), patience)
    assert worker.alive(), f"worker died:\n{worker.log()[-3000:]}"
    if injector is not None:
        injector.join(30)
    # Past the visibility timeout (5 s) plus a restore sweep, nothing may still be in flight
    time.sleep(7)
    runs, text = _runs(redis_client), _dead_lettered_text()
    problems = []
    for case in batch:
        ran, dead = _outcome(case, runs, text)
        if (exactly_once and ran > 1) or (ran == 0 and not dead):
            problems.append(f"ran {ran}x, in DLQ: {dead}: {'; '.join(case.description)}")
    report = os.environ.get("FLEET_FUZZ_REPORT")
    if report and problems:
        with open(report, "w") as out:
            out.write("\n".join(problems))
    in_flight = {
        "unacked": unacked_count(redis_client),
        "quarantine": redis_client.hlen(quarantine_key(QUEUE)),
        **{k.decode(): redis_client.llen(k) for k in redis_client.keys(f"{QUEUE}*")},
    }
    assert not problems, (
        f"{len(problems)} of {len(batch)} cases (in flight: {in_flight}):\n" + "\n".join(problems)
    )
    assert not any(in_flight.values()), in_flight
    # And the worker still consumes
    result = celery_app.send_task(TASK, args=["after"])
    wait_until(lambda: _runs(redis_client).get(result.id) == 1, 20, message="a call after")
    assert worker.alive()


def _wait_quietly(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.5)


def test_lone_surrogate_leaves_nothing_behind(
    redis_client: redis.Redis, worker_factory: Any
) -> None:
    # A valid call whose argument holds a lone surrogate escape runs once and leaves no
    # quarantine record behind (a later worker would dead-letter it: a spurious entry).
    message = _base("fz-surrogate")
    message["headers"]["note"] = "\ud800"
    raw = json.dumps(message).encode()
    redis_client.lpush(QUEUE, raw)
    worker_factory(QUEUE, env=VISIBILITY)
    wait_until(lambda: _runs(redis_client).get("fz-surrogate") == 1, 20, message="run")
    time.sleep(1)
    assert redis_client.hlen(quarantine_key(QUEUE)) == 0
    assert unacked_count(redis_client) == 0
