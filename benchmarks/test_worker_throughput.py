"""`fleet worker` against plain Celery, side by side in one run (issue figures P1, P2, P6-P8).

Three workers, each `-P prefork -c 2` on its own private redis-server: plain Celery with its
library defaults, plain Celery with the settings celery-fleet ships (late ack, reject on
worker lost, prefetch 4, results ignored, events as FLEET_TASK_EVENTS, no per-task log
lines), and `fleet worker -Q default -c 2` as shipped. Drains of BENCH_TASKS no-op tasks run
interleaved for BENCH_ROUNDS rounds (the order rotating); each ratio is the median of the
per-round ratios, so drift on a shared machine hits both sides of a ratio alike."""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import results
import worker_bench as wb

TASKS = int(os.environ.get("BENCH_TASKS", "1500"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "60"))
LATENCY_SAMPLES = int(os.environ.get("BENCH_LATENCY_SAMPLES", "100"))

PLAIN_DEFAULTS = wb.Variant("plain-defaults", fleet=False, env={"PLAIN_LOGLEVEL": "WARNING"})
# Same settings includes no per-task log lines: fleet ships FLEET_LOG_EVERY_TASK=false.
PLAIN_SAME = wb.Variant(
    "plain-same-settings",
    fleet=False,
    env={"PLAIN_SETTINGS": "fleet", "PLAIN_LOGLEVEL": "WARNING"},
)
FLEET = wb.Variant("fleet", fleet=True)


@pytest.fixture(scope="module")
def workers(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("workers")
    started: dict[str, Any] = {}
    try:
        for variant in (PLAIN_DEFAULTS, PLAIN_SAME, FLEET):
            started[variant.name] = wb.start(variant, Path(tmp))
        yield started
    finally:
        for worker in started.values():
            wb.stop(worker)


def _drains(workers: dict[str, Any]) -> dict[str, list[wb.Drain]]:
    runs: dict[str, list[wb.Drain]] = {name: [] for name in workers}
    names = list(workers)
    for round_no in range(ROUNDS):
        # Rotate who goes first, so a trend in the machine's load favours nobody.
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].append(wb.drain(workers[name], TASKS))
    return runs


def _ratio(runs: dict[str, list[wb.Drain]], name: str, baseline: str) -> float:
    return statistics.median(
        f.tasks_per_second / b.tasks_per_second
        for f, b in zip(runs[name], runs[baseline], strict=True)
    )


def _marginal(full: wb.Drain, half: wb.Drain) -> float:
    return (full.commands_per_task * TASKS - half.commands_per_task * (TASKS // 2)) / (
        TASKS - TASKS // 2
    )


def test_throughput_and_commands_per_task(benchmark: Any, workers: dict[str, Any]) -> None:
    runs = benchmark.pedantic(_drains, args=(workers,), rounds=1, iterations=1)
    rates = {name: [round(d.tasks_per_second) for d in drains] for name, drains in runs.items()}
    p1 = _ratio(runs, FLEET.name, PLAIN_SAME.name)
    p2 = _ratio(runs, FLEET.name, PLAIN_DEFAULTS.name)
    results.record(
        "P1", "fleet / plain Celery, same settings (tasks/s)", p1, ">= 0.97", p1 >= 0.97,
        tasks_per_second=rates, tasks=TASKS, rounds=ROUNDS,
    )  # fmt: skip
    results.record(
        "P2", "fleet shipped defaults / plain Celery defaults (tasks/s)", p2, ">= 0.90",
        p2 >= 0.90, tasks_per_second=rates,
    )  # fmt: skip
    # Per task = the marginal cost: commands of a drain of N minus those of a drain of N/2,
    # over N/2. A drain's fixed costs (the one poll that finds the queue empty, a sweep)
    # cancel out; they are an idle worker's cost, measured as P7a.
    half = [wb.drain(workers[name], TASKS // 2) for name in (FLEET.name, PLAIN_SAME.name)]
    fleet_cmds = _marginal(runs[FLEET.name][-1], half[0])
    plain_cmds = _marginal(runs[PLAIN_SAME.name][-1], half[1])
    results.record(
        "P6", "Redis commands per task, fleet - plain (MULTI/EXEC excluded)",
        fleet_cmds - plain_cmds, "<= 1", fleet_cmds - plain_cmds <= 1.0 + 1e-9,
        fleet=round(fleet_cmds, 3), plain=round(plain_cmds, 3),
        fleet_average_with_fixed_costs=round(runs[FLEET.name][-1].commands_per_task, 3),
        plain_average_with_fixed_costs=round(runs[PLAIN_SAME.name][-1].commands_per_task, 3),
        fleet_by_command=runs[FLEET.name][-1].by_command,
        plain_by_command=runs[PLAIN_SAME.name][-1].by_command,
    )  # fmt: skip
    # Redis server CPU per task (user + sys of each worker's private redis-server over a
    # drain), fleet over plain Celery with the same settings, per round like P1.
    p8 = statistics.median(
        f.cpu_usec_per_task / b.cpu_usec_per_task
        for f, b in zip(runs[FLEET.name], runs[PLAIN_SAME.name], strict=True)
    )
    results.record(
        "P8", "Redis server CPU per task (user + sys), fleet / plain Celery", p8, "<= 1.0",
        p8 <= 1.0,
        fleet_cpu_usec_per_task=[round(d.cpu_usec_per_task, 1) for d in runs[FLEET.name]],
        plain_cpu_usec_per_task=[round(d.cpu_usec_per_task, 1) for d in runs[PLAIN_SAME.name]],
        fleet_usec_by_command=runs[FLEET.name][-1].usec_by_command,
        plain_usec_by_command=runs[PLAIN_SAME.name][-1].usec_by_command,
    )  # fmt: skip
    benchmark.extra_info.update({"tasks_per_second": rates, "p1": p1, "p2": p2, "p8": p8})
    for key in ("P1", "P2", "P6", "P8"):
        results.check(key)


def _idle_and_latency(workers: dict[str, Any]) -> dict[str, Any]:
    fleet, plain = workers[FLEET.name], workers[PLAIN_DEFAULTS.name]
    # Both idle at once, each on its own Redis: the same wall-clock window.
    for worker in (fleet, plain):
        worker.client.config_resetstat()
    import time

    time.sleep(IDLE_SECONDS)
    idle = {}
    for worker in (fleet, plain):
        stats = wb.worker_commands(wb.commandstats(worker.client))
        idle[worker.variant.name] = (sum(stats.values()) / IDLE_SECONDS, stats)
    # Interleaved one by one, so load on the machine hits both alike.
    latencies: dict[str, list[float]] = {fleet.variant.name: [], plain.variant.name: []}
    for _ in range(LATENCY_SAMPLES):
        for worker in (fleet, plain):
            latencies[worker.variant.name] += wb.pickup_latency_ms(worker, 1, 0.02)
    return {"idle": idle, "latency": latencies}


def test_idle_cost_and_pickup_latency(benchmark: Any, workers: dict[str, Any]) -> None:
    measured = benchmark.pedantic(_idle_and_latency, args=(workers,), rounds=1, iterations=1)
    fleet_idle, fleet_stats = measured["idle"][FLEET.name]
    plain_idle, plain_stats = measured["idle"][PLAIN_DEFAULTS.name]
    results.record(
        "P7a", "Redis commands per second, one idle fleet worker", fleet_idle, "<= 1",
        fleet_idle <= 1.0, plain=round(plain_idle, 3), idle_seconds=IDLE_SECONDS,
        fleet_by_command=fleet_stats, plain_by_command=plain_stats,
    )  # fmt: skip
    fleet_ms, plain_ms = measured["latency"][FLEET.name], measured["latency"][PLAIN_DEFAULTS.name]
    for key, pct in (("P7b", 50), ("P7c", 99)):
        extra = wb.percentile(fleet_ms, pct) - wb.percentile(plain_ms, pct)
        results.record(
            key, f"pickup latency p{pct} of an idle worker, fleet - plain (ms)", extra, "<= 5",
            extra <= 5.0, fleet_ms=round(wb.percentile(fleet_ms, pct), 2),
            plain_ms=round(wb.percentile(plain_ms, pct), 2), samples=LATENCY_SAMPLES,
        )  # fmt: skip
    for key in ("P7a", "P7b", "P7c"):
        results.check(key)
