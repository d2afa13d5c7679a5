"""Dead-letter entries and the `fleet` CLI against the test cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from envelopes import call_body, envelope
from fault_bodies import executed
from harness import REPO

from service.dlq.entry import DLQEntry, Envelope

TASK = "service.tasks.diagnostics.noop"


def dead_letter(
    queue: str, entry_id: str, reason: str = "non_retryable_error", at: float = 1.7e9
) -> tuple[DLQEntry, Envelope]:
    entry: dict[str, Any] = {
        "id": entry_id,
        "task_id": entry_id,
        "task_name": TASK,
        "queue": queue,
        "reason": reason,
        "last_failure_at": at,
        "first_failure_at": at,
        "retries": 0,
        "args": [entry_id],
        "kwargs": {},
    }
    return entry, json.loads(envelope(TASK, call_body(entry_id), task_id=entry_id))  # type: ignore[return-value]


def fleet(url: str, *args: str, dlq_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m service <args>` with the broker on `url`, the DLQ there or on `dlq_url`."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("CELERY_RESULT_BACKEND", "FLEET_DLQ_URL")
    }
    env["CELERY_BROKER_URL"] = url
    if dlq_url is not None:
        env["FLEET_DLQ_URL"] = dlq_url
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def cluster_app(url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A producer app with its broker on the cluster (results ignored, as shipped). Celery
    reads CELERY_BROKER_URL from the environment before its configuration, so the test's
    environment names the cluster while it runs."""
    from service.app_factory import create_app
    from service.config.settings import FleetSettings

    monkeypatch.setenv("CELERY_BROKER_URL", url)
    return create_app(FleetSettings())


def cluster_worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    """A worker on the cluster broker; results (the tests never read them) on one Redis."""
    return {"CELERY_RESULT_BACKEND": redis_url, **extra}


runs = executed  # service.tasks.diagnostics.record's counts for a run: item -> executions
