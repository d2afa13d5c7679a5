"""Example tasks do real work: SMTP sends, report files, Redis aggregates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from harness import free_port, start_fleet


class _Inbox:
    def __init__(self, reject: bool = False) -> None:
        self.messages: list[Envelope] = []
        self.reject = reject

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.reject:
            return "550 mailbox unavailable"
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _Inbox]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


def test_send_email_delivers_over_smtp(
    celery_app: Any,
    redis_client: redis.Redis,
    worker_factory: Any,
    smtp_server: tuple[int, _Inbox],
) -> None:
    port, inbox = smtp_server
    worker_factory("email", env={"FLEET_SMTP_HOST": "127.0.0.1", "FLEET_SMTP_PORT": str(port)})
    result = celery_app.send_task(
        "service.tasks.email.send_email", args=["ann@example.com", "Hi", "Body text"]
    )
    message_id = result.get(timeout=30)
    assert message_id == f"<{result.id}@celery-fleet>"
    assert len(inbox.messages) == 1
    assert inbox.messages[0].rcpt_tos == ["ann@example.com"]
    assert b"Body text" in inbox.messages[0].content


def test_reports_and_analytics_do_real_work(
    celery_app: Any, redis_client: redis.Redis, worker_factory: Any
) -> None:
    worker = worker_factory("low_priority,analytics")
    path = Path(
        celery_app.send_task("service.tasks.reports.generate_monthly_report", args=[2, 2024]).get(
            timeout=30
        )
    )
    assert path.parent == Path(worker.env["FLEET_REPORTS_DIR"])
    assert len(path.read_text().splitlines()) == 1 + 29  # header + leap February
    events = [{"type": "click"}, {"type": "view"}, {"type": "click"}]
    counts = celery_app.send_task(
        "service.tasks.analytics.aggregate_events", args=[events, "day1"]
    ).get(timeout=30)
    assert counts == {"click": 2, "view": 1}
    assert redis_client.hgetall("fleet:analytics:day1") == {b"click": b"2", b"view": b"1"}


def test_annotation_rate_limit_applies(celery_app: Any) -> None:
    celery_app.loader.import_default_modules()
    assert celery_app.tasks["service.tasks.analytics.aggregate_events"].rate_limit == "50/s"
    assert celery_app.tasks["service.tasks.email.send_email"].rate_limit == "100/m"


def test_beat_runs_the_periodic_snapshot(
    redis_client: redis.Redis, worker_factory: Any, tmp_path: Path
) -> None:
    import os
    import signal

    from harness import wait_until

    # Given a worker and one beat with a 1 s snapshot interval, and some waiting work
    redis_client.lpush("email", b"{}")
    worker = worker_factory("default")
    env = dict(worker.env, FLEET_SNAPSHOT_INTERVAL="1")
    log_path = tmp_path / "beat.log"
    beat = start_fleet("beat", env, log_path)
    try:
        # Then the snapshot task runs on the worker and logs every queue's backlog
        wait_until(lambda: worker.log().count("queue snapshot") >= 2, 30, message="two snapshots")
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(20)
    assert '"email": {"waiting": 1' in worker.log()
    # And the schedule is in Redis, under the fleet's beat keys, not in a file
    from service.catalog.naming import beat_entry_key

    assert redis_client.exists(beat_entry_key("snapshot-queues"))
