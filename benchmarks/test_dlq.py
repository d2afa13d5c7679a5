"""The dead-letter store at 100k entries: show, replay and the first page of `fleet dlq list`
stay interactive, and replay is O(log n) (100k no more than ~3x slower than 1k)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import redis
import results
from payloads import dlq_item

from service import app
from service.catalog.queues import CATALOG
from service.config.settings import get_settings
from service.dlq.reader import Filter
from service.dlq.writer import DLQWriter

LARGE = 100_000
SMALL = 1_000
REPLAY_ROUNDS = 300
# A sorted-set delete is O(log n): 100x the entries should cost well under 3x per replay.
MAX_REPLAY_RATIO = 3.0

_replay_medians: dict[int, float] = {}


def _fill(dlq: DLQWriter, size: int) -> None:
    batch = 10_000
    for start in range(0, size, batch):
        items = [dlq_item(i) for i in range(start, min(start + batch, size))]
        assert dlq.add_many(items) == len(items)


def _store(client: redis.Redis) -> DLQWriter:
    # The app registers the task names the store's index keys are capped to, as in a worker.
    app.loader.import_default_modules()
    settings = get_settings()
    return DLQWriter(client, settings.priority_steps, settings.priority_sep)


@pytest.fixture(scope="module")
def dlq_large(redis_db: Callable[[int], redis.Redis]) -> DLQWriter:
    dlq = _store(redis_db(1))
    _fill(dlq, LARGE)
    assert dlq.reader.count(Filter()) == LARGE
    return dlq


@pytest.fixture(scope="module")
def dlq_small(redis_db: Callable[[int], redis.Redis]) -> DLQWriter:
    # Its own database, so the 1k case really has 1k entries in every index.
    dlq = _store(redis_db(2))
    _fill(dlq, SMALL)
    return dlq


def test_show_at_100k(benchmark: Any, dlq_large: DLQWriter) -> None:
    # `fleet dlq show ID` without --queue looks the id up in every catalog queue.
    entry = benchmark(dlq_large.reader.find, "id-054321", CATALOG.names)
    assert entry["args"] == [54321]


def test_list_first_page_at_100k(benchmark: Any, dlq_large: DLQWriter) -> None:
    page = benchmark(dlq_large.reader.page, Filter(), limit=50)
    assert [e["id"] for e in page[:2]] == ["id-099999", "id-099998"]
    assert len(page) == 50


def _bench_replay(benchmark: Any, dlq: DLQWriter, size: int) -> None:
    """Replay a different random id each round; the setup (not timed) puts the previous one
    back, so the DLQ holds `size` entries at every replay."""
    ids = random.Random(size).sample(range(size), REPLAY_ROUNDS)
    pending = iter(ids)
    previous: list[int] = []

    def setup() -> tuple[tuple[str, str], dict[str, Any]]:
        if previous:
            assert dlq.add(*dlq_item(previous.pop()))
        i = next(pending)
        previous.append(i)
        return ("default", f"id-{i:06d}"), {}

    replayed = benchmark.pedantic(dlq.replay, setup=setup, rounds=REPLAY_ROUNDS, iterations=1)
    assert replayed is True
    # Each replay pushed exactly one message (one round only under --benchmark-disable).
    assert dlq.client.llen("default") == REPLAY_ROUNDS - sum(1 for _ in pending)
    assert dlq.reader.count(Filter()) == size - 1
    if benchmark.stats is not None:
        _replay_medians[size] = benchmark.stats.stats.median


def test_replay_at_1k(benchmark: Any, dlq_small: DLQWriter) -> None:
    _bench_replay(benchmark, dlq_small, SMALL)


def test_replay_at_100k(benchmark: Any, dlq_large: DLQWriter) -> None:
    _bench_replay(benchmark, dlq_large, LARGE)
    if SMALL not in _replay_medians or LARGE not in _replay_medians:
        pytest.skip("run with test_replay_at_1k (and benchmarks enabled) to compare")
    ratio = _replay_medians[LARGE] / _replay_medians[SMALL]
    benchmark.extra_info["median_ratio_vs_1k"] = round(ratio, 2)
    results.record(
        "P4",
        f"DLQ replay at {LARGE} / at {SMALL} entries (median time)",
        ratio,
        f"<= {MAX_REPLAY_RATIO}",
        ratio <= MAX_REPLAY_RATIO,
    )
    assert ratio <= MAX_REPLAY_RATIO, (
        f"replay at {LARGE} is {ratio:.1f}x slower than at {SMALL} (limit {MAX_REPLAY_RATIO}x)"
    )
