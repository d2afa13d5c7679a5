"""One `fleet dev` run: its options, and the state the main loop (service.dev.runner) and the
summary (service.dev.report) share."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from service.config.settings import FleetSettings
from service.dev.observe import Snapshot
from service.dev.processes import Component, ProcessSet, log_tail
from service.dev.stack import Stack
from service.dev.stubs import Stubs
from service.dev.workload import Workload


@dataclass(frozen=True)
class Options:
    duration: float | None
    demo: bool
    json_summary: bool
    ports: dict[str, int]
    rate: float = 2.0


@dataclass
class Run:
    options: Options
    settings: FleetSettings
    console: Console
    home: Path
    processes: ProcessSet
    signals: list[int] = field(default_factory=list)
    stack: Stack | None = None
    stubs: Stubs | None = None
    workload: Workload | None = None
    stopped_by: str = "duration"
    failure: dict[str, Any] | None = None
    started_at: float = field(default_factory=time.monotonic)

    def interrupted(self) -> bool:
        if self.signals:
            self.stopped_by = signal.Signals(self.signals[0]).name
        return bool(self.signals)

    def notes(self, snapshot: Snapshot) -> tuple[str, ...]:
        """The cluster-wide rate limit at work, and what the local stand-ins received."""
        if self.stubs is None:
            return ()
        rate, mail = snapshot.rate_limit, self.stubs.mailbox
        limit = self.settings.external_api_limit
        window = self.settings.external_api_window_seconds
        return (
            f"rate limit: {rate.get('granted', 0):.0f} calls granted, at most "
            f"{rate.get('max_granted_in_window', 0):.0f} within "
            f"{rate.get('measured_window_seconds', window):g}s (limit {limit} per {window:g}s); "
            f"external API stub: {len(self.stubs.api_log.times)} calls; SMTP sink: "
            f"{mail.delivered} delivered, {mail.deferred} deferred with 451",
        )

    def died(self) -> Component | None:
        exited = self.processes.exited()
        if not exited:
            return None
        component = exited[0]
        tail = log_tail(component.log)
        self.failure = {
            "component": component.name,
            "exit_code": component.exit_code(),
            "log": str(component.log),
            "log_tail": tail,
        }
        self.stopped_by = "component exited"
        self.console.print(
            f"[bold red]stopped early:[/] {component.name} exited with code "
            f"{component.exit_code()}; last lines of {component.log}:",
            highlight=False,
        )
        self.console.print(tail, markup=False, highlight=False, soft_wrap=True)
        return component
