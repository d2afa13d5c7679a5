"""Worker settings take one route: the worker derives them from the catalog at start
(`fleet worker -Q <queue>`), and a flag given on the command line wins."""

from __future__ import annotations

from types import SimpleNamespace

from service.catalog.queues import CATALOG
from service.worker.hooks import apply_queue_defaults


def test_a_worker_takes_its_queues_settings_from_the_catalog() -> None:
    for queue in CATALOG:
        conf = SimpleNamespace()
        apply_queue_defaults(conf, {"queues": queue.name})
        assert conf.worker_concurrency == queue.concurrency
        assert conf.worker_prefetch_multiplier == queue.prefetch_multiplier
        assert conf.task_soft_time_limit == queue.soft_time_limit
        assert conf.task_time_limit == queue.hard_time_limit


def test_several_queues_take_the_largest_limits_and_the_smallest_prefetch() -> None:
    conf = SimpleNamespace()
    apply_queue_defaults(conf, {"queues": "default,heavy_processing"})
    default, heavy = CATALOG.get("default"), CATALOG.get("heavy_processing")
    assert conf.worker_concurrency == max(default.concurrency, heavy.concurrency)
    assert conf.worker_prefetch_multiplier == min(
        default.prefetch_multiplier, heavy.prefetch_multiplier
    )
    assert conf.task_time_limit == max(default.hard_time_limit, heavy.hard_time_limit)


def test_a_flag_on_the_command_line_wins() -> None:
    conf = SimpleNamespace(worker_concurrency=3)
    apply_queue_defaults(conf, {"queues": ["email"], "concurrency": 3})
    assert conf.worker_concurrency == 3
    assert conf.worker_prefetch_multiplier == CATALOG.get("email").prefetch_multiplier
