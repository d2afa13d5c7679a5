"""Renders snapshots: a rich table for a terminal (refreshed in place), plain lines for a
log or a pipe, and the endpoint table printed once at start."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from service.dev.observe import Snapshot

HEADERS = (
    ("waiting", "waiting"),
    ("running", "running"),
    ("succeeded", "succeeded"),
    ("retried", "retried"),
    ("failed", "failed"),
    ("dead_lettered", "dead-\nlettered"),
    ("dlq_size", "in\nDLQ"),
)


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _age(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


def _alerts_text(snapshot: Snapshot) -> str:
    if snapshot.alerts is None:
        return "alerts: no Prometheus"
    if not snapshot.alerts:
        return "alerts: none pending or firing"
    parts = [
        f"{a['alertname']}{'(' + a['queue'] + ')' if a['queue'] else ''} {a['state']}"
        for a in snapshot.alerts
    ]
    return "alerts: " + ", ".join(parts)


def _status_line(snapshot: Snapshot) -> str:
    exporter = "up" if snapshot.exporter_up else "DOWN"
    dlq = ", ".join(f"{r} {n}" for r, n in sorted(snapshot.dlq_by_reason.items())) or "empty"
    line = (
        f"workers alive {snapshot.workers_alive}/{snapshot.workers_expected}; "
        f"exporter {exporter}; DLQ by reason: {dlq}"
    )
    if snapshot.unavailable:
        line += "; not answering: " + ", ".join(snapshot.unavailable)
    return line


def live_view(
    snapshot: Snapshot, elapsed: float, title: str, notes: tuple[str, ...] = ()
) -> RenderableType:
    # Compact, so the whole table fits an 80-column terminal.
    table = Table(
        title=Text(f"{title} [{elapsed:.0f} s]"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=0,
        show_edge=False,
    )
    table.add_column("queue", no_wrap=True)
    for _, header in HEADERS:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("oldest\nwaiting", justify="right", no_wrap=True)
    rows = [*snapshot.queues.items(), ("total", snapshot.totals())]
    for name, figures in rows:
        style = "bold" if name == "total" else None
        cells = [_n(figures.get(key)) for key, _ in HEADERS]
        table.add_row(name, *cells, _age(figures.get("oldest_waiting_seconds")), style=style)
    firing = snapshot.firing()
    alerts = Text(_alerts_text(snapshot), style="bold red" if firing else "")
    return Group(table, Text(_status_line(snapshot)), alerts, *(Text(n) for n in notes))


def plain_lines(snapshot: Snapshot, elapsed: float, notes: tuple[str, ...] = ()) -> list[str]:
    """One line per queue and one for the totals, for logs and pipes."""
    stamp = f"[{elapsed:5.0f}s]"
    lines = []
    for name, figures in [*snapshot.queues.items(), ("total", snapshot.totals())]:
        cells = " ".join(f"{key}={_n(figures.get(key))}" for key, _ in HEADERS)
        oldest = _age(figures.get("oldest_waiting_seconds"))
        lines.append(f"{stamp} {name:<16} {cells} oldest_waiting={oldest}")
    lines.append(f"{stamp} {_status_line(snapshot)}")
    lines.append(f"{stamp} {_alerts_text(snapshot)}")
    lines.extend(f"{stamp} {note}" for note in notes)
    return lines


def endpoints_table(endpoints: dict[str, str], home: Path, flower_login: str) -> Table:
    table = Table(title="celery-fleet dev stack (Ctrl-C stops it)", title_justify="left")
    table.add_column("what")
    table.add_column("where")
    for name, url in endpoints.items():
        table.add_row(name, url)
    table.add_row("flower login", flower_login)
    table.add_row("logs", str(home))
    return table
