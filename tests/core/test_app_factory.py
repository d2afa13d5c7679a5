"""The app factory's EXTENSIONS table is the one place Celery and kombu are extended: building
the app installs every piece it lists, as the class itself where Celery takes a class."""

from __future__ import annotations

from typing import Any

from kombu import transport as kombu_transport

from service import task_names
from service.app_factory import EXTENSIONS, create_app
from service.config.settings import FleetSettings
from service.dlq import listeners
from service.dlq.consumer import FleetConsumer
from service.dlq.request import FleetRequest
from service.tasks.base import FleetTask
from service.transport import quarantine
from service.transport.channel import Transport
from service.worker import hooks
from service.worker.heartbeat import HeartbeatStep
from service.worker.metrics import task_metrics


def test_building_the_app_installs_every_extension(redis_client: Any) -> None:
    app = create_app(FleetSettings())
    assert app.conf.worker_consumer is FleetConsumer
    assert FleetTask.Request is FleetRequest
    assert HeartbeatStep in app.steps["consumer"]
    assert kombu_transport.resolve_transport("redis") is Transport
    assert quarantine._poison_sink is not None
    assert task_metrics.dead_lettered in listeners._listeners
    assert "service.tasks.email.send_email" in task_names.registered()
    assert "beat_schedule" in app.conf and app.conf.beat_schedule
    for signal, handler in hooks.SIGNAL_HANDLERS:
        # weak=False: Celery keeps the handler itself in (lookup key, receiver) pairs.
        assert handler in [receiver for _, receiver in signal.receivers]


def test_each_extension_names_a_real_piece() -> None:
    points = [extension.point for extension in EXTENSIONS]
    assert len(points) == len(set(points))
    for extension in EXTENSIONS:
        assert not isinstance(extension.piece, str), extension.point
