"""`fleet dlq list|show|replay|purge|stats`: operate the dead-letter queue."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from service.catalog.queues import CATALOG
from service.dlq.reasons import Reason
from service.dlq.store import DLQStore, Filter
from service.errors import DLQError
from service.redaction import mask_text, redact

dlq_cli = typer.Typer(
    help="Inspect, replay and purge dead-lettered messages.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}

QueueOpt = typer.Option(None, "--queue", "-q", help="Source queue.")
TaskOpt = typer.Option(None, "--task", "-t", help="Exact task name.")
ReasonOpt = typer.Option(None, "--reason", "-r", help="Dead-letter reason.")
SinceOpt = typer.Option(None, "--since", help="ISO time or age like 30m, 2h, 1d.")
UntilOpt = typer.Option(None, "--until", help="ISO time or age like 30m, 2h, 1d.")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")


def _store() -> DLQStore:
    from service.dlq.capture import store

    return store()


_Command = TypeVar("_Command", bound=Callable[..., Any])
# Free-text fields of an entry: masked again on display (entries written by older versions).
_TEXT_FIELDS = ("raw_body", "traceback", "exception_message", "dlq_write_error")


def _fail(message: str, code: int = 2) -> typer.Exit:
    # Message data and user input are never Rich markup: `[/bold]` in a task name is text.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def redis_errors(command: _Command) -> _Command:
    """Redis down, hung (socket timeout) or refusing: one line on stderr, exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except redis.RedisError as exc:
            detail = mask_text(str(exc), _sensitive(), limit=300).splitlines()
            raise _fail(
                f"Redis is unavailable ({type(exc).__name__}: {detail[0] if detail else ''})", 1
            ) from None

    return wrapper  # type: ignore[return-value]


def parse_time(value: str | None, option: str) -> int | None:
    """Milliseconds since the epoch, from ISO 8601 or a relative age ("30m" = 30 min ago)."""
    if value is None:
        return None
    match = _RELATIVE.match(value.strip())
    if match:
        return int((time.time() - float(match[1]) * _UNIT_SECONDS[match[2]]) * 1000)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"{option}: {value!r} is neither ISO 8601 nor an age like 30m/2h/1d") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def build_filter(
    queue: str | None,
    task: str | None,
    reason: str | None,
    since: str | None,
    until: str | None,
) -> Filter:
    if queue is not None and queue not in CATALOG:
        raise _fail(f"unknown queue {queue!r}; known queues: {', '.join(CATALOG.names)}")
    if reason is not None and reason not in {r.value for r in Reason}:
        raise _fail(f"unknown reason {reason!r}; one of: {', '.join(r.value for r in Reason)}")
    return Filter(queue, task, reason, parse_time(since, "--since"), parse_time(until, "--until"))


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _sensitive() -> tuple[str, ...]:
    from service.config.settings import get_settings

    return get_settings().sensitive_keys


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    # Entries are stored redacted; redact again so entries written under an older, shorter
    # sensitive-key list (or before raw bodies were masked) do not leak through the CLI.
    keys = _sensitive()
    public = dict(redact(entry, keys))
    for field in _TEXT_FIELDS:
        if isinstance(public.get(field), str):
            public[field] = mask_text(public[field], keys)
    return public


def _locate(store: DLQStore, entry_id: str, queue: str | None) -> dict[str, Any]:
    queues = (queue,) if queue else CATALOG.names
    return store.find(entry_id, queues)


@dlq_cli.command("list")
@redis_errors
def list_entries(
    queue: str | None = QueueOpt,
    task: str | None = TaskOpt,
    reason: str | None = ReasonOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    limit: int = typer.Option(50, min=1, max=1000, help="Page size."),
    offset: int = typer.Option(0, min=0, help="Entries to skip (pagination)."),
    as_json: bool = JsonOpt,
) -> None:
    """List entries, newest first."""
    flt = build_filter(queue, task, reason, since, until)
    entries = [_public(e) for e in _store().page(flt, offset=offset, limit=limit)]
    if as_json:
        print(json.dumps(entries, indent=2, sort_keys=True))
        return
    if not entries:
        console.print("no dead-letter entries match" if offset == 0 else "no more entries")
        return
    table = Table(title=f"dead-letter entries {offset + 1}..{offset + len(entries)}")
    for column in ("id", "queue", "task", "reason", "exception", "retries", "last failure"):
        table.add_column(column, overflow="fold")
    for e in entries:
        # Text cells: values from messages are shown as they are, never parsed as markup.
        table.add_row(
            *(
                Text(str(value))
                for value in (
                    e["id"],
                    e["queue"],
                    e["task_name"],
                    e["reason"],
                    e.get("exception_type") or "",
                    e.get("retries", 0),
                    _when(e["last_failure_at"]),
                )
            )
        )
    console.print(table)
    if len(entries) == limit:
        console.print(f"more may follow: --offset {offset + limit}")


@dlq_cli.command()
@redis_errors
def show(
    entry_id: str = typer.Argument(..., help="Entry id (the task id for task failures)."),
    queue: str | None = QueueOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show one entry in full."""
    try:
        entry = _public(_locate(_store(), entry_id, queue))
    except DLQError as exc:
        raise _fail(str(exc), 1) from None
    if as_json:
        print(json.dumps(entry, indent=2, sort_keys=True))
        return
    table = Table(show_header=False, title=Text(f"dead-letter entry {entry_id}"))
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key in sorted(entry):
        value = entry[key]
        if key.endswith("_at") and isinstance(value, int | float):
            value = _when(value)
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        table.add_row(Text(key), Text("" if value is None else str(value)))
    console.print(table)


def _selected(
    store: DLQStore, ids: list[str], queue: str | None, flt: Filter, everything: bool
) -> list[tuple[str, str]]:
    if ids:
        pairs = []
        for entry_id in ids:
            try:
                pairs.append((_locate(store, entry_id, queue)["queue"], entry_id))
            except DLQError as exc:
                raise _fail(str(exc), 1) from None
        return pairs
    if not everything and flt == Filter():
        raise _fail("name entry ids, a filter (--queue/--task/--reason/--since/--until), or --all")
    # Materialise ids first: the operation below removes them from the index being read.
    return [(e["queue"], e["id"]) for e in store.iter_entries(flt)]


def _matching(
    store: DLQStore,
    verb: str,
    entry_ids: list[str] | None,
    queue: str | None,
    task: str | None,
    reason: str | None,
    since: str | None,
    until: str | None,
    everything: bool,
) -> list[tuple[str, str]]:
    """(queue, id) pairs a bulk command acts on; says so when there are none."""
    flt = build_filter(queue, task, reason, since, until)
    pairs = _selected(store, entry_ids or [], queue, flt, everything)
    if not pairs:
        console.print(f"nothing to {verb}: no entries match")
    return pairs


def _apply(
    pairs: Iterable[tuple[str, str]], total: int, label: str, operation: Any
) -> tuple[int, int]:
    done = missing = 0
    with Progress(console=err_console, transient=True, disable=total < 20) as progress:
        bar = progress.add_task(label, total=total)
        for queue, entry_id in pairs:
            if operation(queue, entry_id):
                done += 1
            else:
                missing += 1  # replayed or purged meanwhile by someone else
            progress.advance(bar)
    return done, missing


@dlq_cli.command()
@redis_errors
def replay(
    entry_ids: list[str] = typer.Argument(None, help="Entry ids; or use filters / --all."),
    queue: str | None = QueueOpt,
    task: str | None = TaskOpt,
    reason: str | None = ReasonOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    everything: bool = typer.Option(False, "--all", help="Replay every entry."),
    to_queue: str | None = typer.Option(None, "--to-queue", help="Send to this queue instead."),
    as_json: bool = JsonOpt,
) -> None:
    """Re-enqueue entries and remove them from the DLQ, each in one atomic step."""
    destination = None
    if to_queue is not None:
        if to_queue not in CATALOG:
            raise _fail(f"unknown --to-queue {to_queue!r}; known: {', '.join(CATALOG.names)}")
        destination = CATALOG.get(to_queue)
    store = _store()
    resumed = store.resume_claims()
    if resumed:
        console.print(f"finished {resumed} replays an earlier crash interrupted")
    pairs = _matching(store, "replay", entry_ids, queue, task, reason, since, until, everything)
    if not pairs:
        return

    def one(source: str, entry_id: str) -> bool:
        if destination is None:
            return store.replay(source, entry_id)
        return store.replay(
            source, entry_id, destination.name, destination.exchange, destination.routing_key
        )

    done, missing = _apply(pairs, len(pairs), "replaying", one)
    _report("replayed", done, missing, as_json)


@dlq_cli.command()
@redis_errors
def purge(
    entry_ids: list[str] = typer.Argument(None, help="Entry ids; or use filters / --all."),
    queue: str | None = QueueOpt,
    task: str | None = TaskOpt,
    reason: str | None = ReasonOpt,
    since: str | None = SinceOpt,
    until: str | None = UntilOpt,
    everything: bool = typer.Option(False, "--all", help="Purge every entry."),
    yes: bool = typer.Option(False, "--yes", help="Required: purging cannot be undone."),
    as_json: bool = JsonOpt,
) -> None:
    """Delete entries for good (requires --yes)."""
    store = _store()
    pairs = _matching(store, "purge", entry_ids, queue, task, reason, since, until, everything)
    if not pairs:
        return
    if not yes:
        raise _fail(f"purge would delete {len(pairs)} entries for good; add --yes to confirm")
    done, missing = _apply(pairs, len(pairs), "purging", store.purge)
    _report("purged", done, missing, as_json)


def _report(verb: str, done: int, missing: int, as_json: bool) -> None:
    if as_json:
        print(json.dumps({verb: done, "already_gone": missing}))
        return
    console.print(f"{verb} {done} entries" + (f" ({missing} already gone)" if missing else ""))


@dlq_cli.command()
@redis_errors
def stats(as_json: bool = JsonOpt) -> None:
    """Entry counts per queue and reason."""
    counts = _store().stats()
    rows = [
        {"queue": queue, "reason": reason, "count": n}
        for (queue, reason), n in sorted(counts.items())
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("the dead-letter queue is empty")
        return
    table = Table(title="dead-letter entries by queue and reason")
    for column in ("queue", "reason", "count"):
        table.add_column(column)
    for row in rows:
        table.add_row(Text(str(row["queue"])), Text(str(row["reason"])), str(row["count"]))
    table.add_row("[bold]total[/]", "", f"[bold]{sum(counts.values())}[/]")
    console.print(table)
