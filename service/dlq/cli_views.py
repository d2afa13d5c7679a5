"""What `fleet dlq` prints: masked entries as tables or JSON. Values from messages go into
Text cells, so they are shown as they are and never parsed as Rich markup."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from service.dlq.cli_options import sensitive_keys
from service.dlq.entry import DLQEntry
from service.redaction import mask_text, redact

console = Console()
# Free-text fields of an entry: masked again on display (entries written by older versions).
_TEXT_FIELDS = ("raw_body", "traceback", "exception_message", "dlq_write_error")
_LIST_COLUMNS = ("id", "queue", "task", "reason", "exception", "retries", "last failure")


def public(entry: DLQEntry) -> dict[str, Any]:
    # Entries are stored redacted; redact again so entries written under an older, shorter
    # sensitive-key list (or before raw bodies were masked) do not leak through the CLI.
    keys = sensitive_keys()
    shown = dict(redact(entry, keys))
    for field in _TEXT_FIELDS:
        if isinstance(shown.get(field), str):
            shown[field] = mask_text(shown[field], keys)
    return shown


def print_json(value: Any, sort_keys: bool = True) -> None:
    print(json.dumps(value, indent=2, sort_keys=sort_keys))


def when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def entries_table(entries: list[dict[str, Any]], offset: int) -> Table:
    table = Table(title=f"dead-letter entries {offset + 1}..{offset + len(entries)}")
    for column in _LIST_COLUMNS:
        table.add_column(column, overflow="fold")
    for e in entries:
        cells = (
            e["id"],
            e["queue"],
            e["task_name"],
            e["reason"],
            e.get("exception_type") or "",
            e.get("retries", 0),
            when(e["last_failure_at"]),
        )
        table.add_row(*(Text(str(value)) for value in cells))
    return table


def entry_table(entry_id: str, entry: dict[str, Any]) -> Table:
    table = Table(show_header=False, title=Text(f"dead-letter entry {entry_id}"))
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key in sorted(entry):
        value = entry[key]
        if key.endswith("_at") and isinstance(value, int | float):
            value = when(value)
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        table.add_row(Text(key), Text("" if value is None else str(value)))
    return table


def stats_table(rows: list[dict[str, Any]], total: int) -> Table:
    table = Table(title="dead-letter entries by queue and reason")
    for column in ("queue", "reason", "count"):
        table.add_column(column)
    for row in rows:
        table.add_row(Text(str(row["queue"])), Text(str(row["reason"])), str(row["count"]))
    table.add_row("[bold]total[/]", "", f"[bold]{total}[/]")
    return table


def report(
    verb: str, done: int, missing: int, as_json: bool, refused: list[dict[str, str]] | None = None
) -> None:
    if as_json:
        extra = {"refused": refused} if refused else {}
        print(json.dumps({verb: done, "already_gone": missing, **extra}))
        return
    console.print(f"{verb} {done} entries" + (f" ({missing} already gone)" if missing else ""))
    for item in refused or ():
        console.print(
            Text(f"refused {item['id']} (queue {item['queue']}): {item['why']}; kept in the DLQ")
        )
    if refused:
        console.print("fix the cause, or replay them anyway with --force")
