"""The demo workload: one of every path the README describes, then a steady trickle so the
live view keeps moving. Every designed task is remembered (id, path, expected outcome) so
the summary can say what became of it; nothing here counts results itself."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from service.catalog.queues import Priority
from service.catalog.routing import HEAVY_QUEUE
from service.tasks.analytics import EXTERNAL_API_LIMIT_NAME

DIAG = "service.tasks.diagnostics"
REPORTS = "service.tasks.reports"
EMAIL = "service.tasks.email"
ANALYTICS = "service.tasks.analytics"
LARGE_PAYLOAD = 5_000_000  # bytes; over the dynamic router's 1 MB threshold
RATE_LIMIT_BURST = 25


@dataclass(frozen=True)
class Designed:
    path: str
    task_id: str
    queue: str  # where the path should take it
    expect: str  # "success" or a dead-letter reason


@dataclass
class Workload:
    app: Celery
    api_url: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    designed: list[Designed] = field(default_factory=list)
    sent: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    def _send(
        self, path: str, lands_in: str, expect: str | None, name: str, *args: Any, **options: Any
    ) -> str:
        kwargs = options.pop("kwargs", None)
        if expect is not None:  # its outcome is read back from the result backend
            options.setdefault("ignore_result", False)
        result = self.app.send_task(name, args=list(args), kwargs=kwargs, **options)
        self.sent[path] += 1
        if expect is not None:
            self.designed.append(Designed(path, str(result.id), lands_in, expect))
        return str(result.id)

    def scenario(self) -> None:
        """One of everything, each tagged with the queue and outcome the README promises."""
        s, ok = self._send, "success"
        s("routing by type", "default", ok, f"{DIAG}.noop", "hello")
        s("routing by type", "email", ok, f"{EMAIL}.send_email", "ada@example.com", "Hi", "Ada")
        s("routing by type", "high_priority", ok, f"{REPORTS}.generate_urgent_report", "r-1")
        s("routing by type", "low_priority", ok, f"{REPORTS}.generate_monthly_report", 11, 2026)
        s("routing by type", "reports", ok, f"{REPORTS}.generate_custom_report", {"name": "q3"})
        events = [{"type": t} for t in ("click", "view", "buy", "click")]
        s("routing by type", "analytics", ok, f"{ANALYTICS}.aggregate_events", events, "demo")
        s(
            "dynamic router: premium tier",
            "high_priority",
            ok,
            f"{EMAIL}.send_welcome_email",
            "grace@example.com",
            "Grace",
            kwargs={"user_tier": "premium"},
        )
        s(
            "dynamic router: large payload",
            HEAVY_QUEUE,
            ok,
            f"{REPORTS}.generate_custom_report",
            {"name": "big"},
            kwargs={"data_size": LARGE_PAYLOAD},
        )
        # Call time beats the dynamic router: premium would go to high_priority.
        s(
            "call-time override",
            "reports",
            ok,
            f"{REPORTS}.generate_custom_report",
            {"name": "override"},
            kwargs={"user_tier": "premium"},
            queue="reports",
        )
        for priority in (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT):
            s("priorities", "default", ok, f"{DIAG}.noop", priority.name, priority=int(priority))
        key = f"dev-{self.run_id}"
        s("retries that recover", "default", ok, f"{DIAG}.flaky", f"{key}-recover", 1)
        s("retries that recover", "email", ok, f"{EMAIL}.send_email", "flaky@example.com", "Hi", "")
        s(
            "retries that exhaust",
            "default",
            "max_retries_exceeded",
            f"{DIAG}.flaky",
            f"{key}-exhaust",
            99,
        )
        s("permanent error", "default", "non_retryable_error", f"{DIAG}.fail", "demo failure")
        s(
            "permanent error",
            "email",
            "non_retryable_error",
            f"{EMAIL}.send_email",
            "nobody",
            "",
            "",
        )
        s(
            "permanent error",
            "low_priority",
            "non_retryable_error",
            f"{REPORTS}.generate_monthly_report",
            13,
            2026,
        )
        self.poison()
        for n in range(RATE_LIMIT_BURST):
            s(
                f"cluster-wide rate limit ({EXTERNAL_API_LIMIT_NAME})",
                "analytics",
                ok,
                f"{ANALYTICS}.enrich_event",
                f"{key}-{n}",
                self.api_url,
            )

    def poison(self) -> None:
        """A message whose body is not JSON: stock Celery would log and drop it."""
        task_id = str(uuid.uuid4())
        with self.app.producer_or_acquire() as producer:
            producer.publish(
                b'{"args": [1, 2',
                exchange="",
                routing_key="default",
                content_type="application/json",
                content_encoding="utf-8",
                headers={"task": f"{DIAG}.noop", "id": task_id, "fleet_sent_at": time.time()},
                retry=True,
            )
        self.sent["poison message"] += 1
        self.designed.append(Designed("poison message", task_id, "default", "malformed_body"))

    def trickle(self, rng: random.Random) -> None:
        """One routine task that succeeds; over a few seconds every queue gets some."""
        n = sum(self.sent.values())
        choice = rng.randrange(8)
        s = self._send
        if choice == 0:
            priority = int(rng.choice(list(Priority)))
            s("steady", "default", None, f"{DIAG}.noop", n, priority=priority)
        elif choice == 1:
            s("steady", "email", None, f"{EMAIL}.send_email", f"u{n}@example.com", "Hi", "")
        elif choice == 2:
            events = [{"type": rng.choice(["click", "view", "buy"])} for _ in range(20)]
            s("steady", "analytics", None, f"{ANALYTICS}.aggregate_events", events, "demo")
        elif choice == 3:
            s("steady", "reports", None, f"{REPORTS}.generate_custom_report", {"name": f"d{n % 5}"})
        elif choice == 4:
            s("steady", "high_priority", None, f"{REPORTS}.generate_urgent_report", f"r{n % 5}")
        elif choice == 5:
            s(
                "steady",
                "low_priority",
                None,
                f"{REPORTS}.generate_monthly_report",
                n % 12 + 1,
                2026,
            )
        elif choice == 6:
            params = {"name": f"big{n % 3}"}
            kwargs: dict[str, Any] = {"data_size": LARGE_PAYLOAD}
            s(
                "steady",
                HEAVY_QUEUE,
                None,
                f"{REPORTS}.generate_custom_report",
                params,
                kwargs=kwargs,
            )
        else:
            kwargs = {"user_tier": "premium"}
            s(
                "steady",
                "high_priority",
                None,
                f"{EMAIL}.send_welcome_email",
                "p@example.com",
                "P",
                kwargs=kwargs,
            )

    def run(self, stop: threading.Event, rate: float = 2.0) -> None:
        """The thread's body; a failure to publish is kept for the summary, not raised."""
        try:
            self.scenario()
            rng = random.Random(7)
            while not stop.wait(1 / rate):
                self.trickle(rng)
        except Exception as exc:  # the broker went away: report it, stop sending
            self.error = f"{type(exc).__name__}: {exc}"[:300]
