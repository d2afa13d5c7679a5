"""Bodies of the fault tests that run on one Redis (tests/dlq) and on a Redis Cluster
(tests/cluster) alike: what is asserted lives here once; each side passes its clients, its
producer and its way of restarting Redis."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from typing import Any

from harness import Worker, wait_until

RECORD = "service.tasks.diagnostics.record"
Send = Callable[[list[Any]], object]  # publishes diagnostics.record with these args


def executed(client: Any, run: str) -> dict[str, int]:
    """service.tasks.diagnostics.record's counts for `run`: item -> executions."""
    return {k.decode(): int(v) for k, v in client.hgetall(f"fleet:diag:runs:{run}").items()}


def nothing_lost_through_a_redis_restart(
    client: Any,
    send: Send,
    restart: Callable[[], object],
    describe: Callable[[], str],
    bound_s: float,
    run: str = "r2",
    total: int = 300,
) -> None:
    """R2: `total` tasks, the Redis holding the queue restarted once a fifth of them ran;
    every task runs (`describe` says where the missing ones are on a failure)."""
    for i in range(total):
        send([run, str(i), 0.02])
    wait_until(lambda: len(executed(client, run)) >= total // 5, 60, message="a fifth done")
    assert len(executed(client, run)) < total, "the restart must happen mid-run"
    restart()
    try:
        wait_until(
            lambda: len(executed(client, run)) == total,
            bound_s,
            interval=0.5,
            message=f"all {total} executed",
        )
    except AssertionError:
        raise AssertionError(describe()) from None
    assert set(executed(client, run)) == {str(i) for i in range(total)}


def warm_shutdown_returns_prefetched_messages(
    client: Any,
    worker: Worker,
    send: Send,
    lists: Sequence[str],
    unacked: Callable[[], int],
    consumers: str,
    run: str = "warm",
) -> None:
    """R3: a worker -c 1 that prefetched 8 tasks of 2 s gets SIGTERM: the running task
    finishes, the others are back in the queue at once (not after a timeout), each task ran
    at most once, and the consumer left the queue's consumers set."""
    for i in range(8):
        send([run, str(i), 2])
    wait_until(lambda: unacked() == 8, 20, message="8 prefetched")
    worker.signal(signal.SIGTERM)
    worker.process.wait(30)
    ran = executed(client, run)
    waiting = sum(int(client.llen(key)) for key in lists)
    assert len(ran) >= 1 and set(ran.values()) == {1}
    assert len(ran) + waiting == 8
    assert unacked() == 0
    assert client.zcard(consumers) == 0
    assert "Warm shutdown" in worker.log()
