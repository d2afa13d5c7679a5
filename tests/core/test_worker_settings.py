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


def test_the_launcher_names_the_queues_prefetch_unless_given() -> None:
    # Celery fills an absent --prefetch-multiplier with the configured value before any
    # hook runs, so the launcher passes the catalog's (the smallest of the queues')
    from service.config.settings import FleetSettings
    from service.worker.launch import worker_args

    settings = FleetSettings()
    args = worker_args(settings, "default,email", ["-c", "2"])
    expected = min(
        CATALOG.get("default").prefetch_multiplier, CATALOG.get("email").prefetch_multiplier
    )
    assert args[args.index("--prefetch-multiplier") + 1] == str(expected)
    given = worker_args(settings, "default", ["--prefetch-multiplier=7"])
    assert given.count("--prefetch-multiplier") == 0 and "--prefetch-multiplier=7" in given


def test_the_transport_refills_half_the_prefetch_beyond_one_per_process() -> None:
    conf = SimpleNamespace(broker_transport_options={"visibility_timeout": 3600})
    apply_queue_defaults(conf, {"queues": "default", "concurrency": 2, "prefetch_multiplier": 4})
    assert conf.broker_transport_options == {"visibility_timeout": 3600, "fleet_refill_batch": 3}
    apply_queue_defaults(conf, {"queues": "default", "concurrency": 4, "prefetch_multiplier": 1})
    assert conf.broker_transport_options["fleet_refill_batch"] == 1
