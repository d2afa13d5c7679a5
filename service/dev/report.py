"""After the stop: the final figures and what became of each designed path, for people
(a table) and for scripts (`--json-summary`: one JSON object on stdout)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from service.dev.observe import Snapshot
from service.dev.run import Run
from service.dev.view import live_view


def final_view(
    final: Snapshot, designed: list[dict[str, Any]], elapsed: float, notes: tuple[str, ...]
) -> RenderableType:
    figures = live_view(final, elapsed, "celery-fleet dev: final figures", notes)
    if not designed:
        return figures
    paths = Table(title="what the demo workload's designed tasks became", title_justify="left")
    for column in ("path", "queue", "expected", "outcome"):
        paths.add_column(column)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in designed:
        groups.setdefault((row["path"], row["queue"], row["expect"]), []).append(row)
    for (path, queue, expect), rows in groups.items():
        seen = Counter(row["outcome"] for row in rows)
        outcome = ", ".join(f"{n} x {what}" for what, n in seen.items())
        good = all(row["as_designed"] for row in rows)
        paths.add_row(path, queue, expect, outcome, style=None if good else "yellow")
    return Group(figures, paths)


def _paths(designed: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per README path: how many designed tasks ended as designed."""
    total: Counter[str] = Counter(row["path"] for row in designed)
    good: Counter[str] = Counter(row["path"] for row in designed if row["as_designed"])
    return {path: {"designed": n, "as_designed": good[path]} for path, n in total.items()}


def summary(
    run: Run, final: Snapshot | None, designed: list[dict[str, Any]], code: int
) -> dict[str, Any]:
    stack, stubs, workload = run.stack, run.stubs, run.workload
    settings = run.settings
    result: dict[str, Any] = {
        "exit_code": code,
        "stopped_by": run.stopped_by,
        "failure": run.failure,
        "logs": str(run.home),
        "endpoints": stack.endpoints if stack else {},
        "ports": stack.plan.ports if stack else {},
        "ports_moved": stack.plan.moved if stack else {},
        "components": {
            name: {"pid": c.pid, "exit_code": c.exit_code()}
            for name, c in run.processes.components.items()
        },
        "queues": final.queues if final else {},
        "totals": final.totals() if final else {},
        "workers": {
            "alive": final.workers_alive if final else 0,
            "expected": final.workers_expected if final else 0,
        },
        "exporter_up": bool(final and final.exporter_up),
        "alerts": final.alerts if final else None,
        "dlq": {
            "by_reason": final.dlq_by_reason if final else {},
            "by_queue": final.dlq_by_queue if final else {},
            "total": sum(final.dlq_by_reason.values()) if final else 0,
        },
        "designed": designed,
        "paths": _paths(designed),
    }
    if workload is not None:
        result["workload"] = {"sent": dict(workload.sent), "error": workload.error}
    if stubs is not None:
        result["rate_limit"] = {
            "limit": settings.external_api_limit,
            "window_seconds": settings.external_api_window_seconds,
            "api_stub_calls": len(stubs.api_log.times),
            **(final.rate_limit if final else {}),
        }
        result["smtp_sink"] = {
            "delivered": stubs.mailbox.delivered,
            "deferred": stubs.mailbox.deferred,
        }
    return result
