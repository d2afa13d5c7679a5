"""`fleet dlq list|show|replay|purge|stats`: operate the dead-letter queue. Options and
errors in service.dlq.cli_options, tables and JSON in service.dlq.cli_views."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import typer
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from service.catalog.queues import CATALOG
from service.cli_support import error
from service.dlq.access import dlq_reader, dlq_writer
from service.dlq.cli_options import (
    EntryIds,
    JsonOption,
    QueueOption,
    ToQueueOption,
    filter_options,
    redis_errors,
)
from service.dlq.cli_views import (
    console,
    entries_table,
    entry_table,
    print_json,
    public,
    report,
    stats_table,
)
from service.dlq.entry import DLQEntry
from service.dlq.parking import parked_count, parked_messages
from service.dlq.reader import DLQReader, Filter
from service.dlq.replay_check import registered_tasks, replay_problem
from service.errors import DLQError

dlq_cli = typer.Typer(
    help="Inspect, replay and purge dead-lettered messages.", no_args_is_help=True
)
_progress_console = Console(stderr=True)


def _locate(reader: DLQReader, entry_id: str, queue: str | None) -> DLQEntry:
    try:
        return reader.find(entry_id, (queue,) if queue else None)
    except DLQError as exc:
        raise error(str(exc), 1) from None


@dlq_cli.command("list")
@redis_errors
@filter_options
def list_entries(
    flt: Filter = Filter(),
    limit: int = typer.Option(50, min=1, max=1000, help="Page size."),
    offset: int = typer.Option(0, min=0, help="Entries to skip (pagination)."),
    as_json: JsonOption = False,
) -> None:
    """List entries, newest first."""
    reader = dlq_reader()
    entries = [public(e) for e in reader.page(flt, offset=offset, limit=limit)]
    if as_json:
        print_json(entries)
        return
    waiting = parked_count(reader.client)
    if waiting:
        _progress_console.print(f"{waiting} parked messages: see `fleet dlq parked`")
    if not entries:
        console.print("no dead-letter entries match" if offset == 0 else "no more entries")
        return
    console.print(entries_table(entries, offset))
    if len(entries) == limit:
        console.print(f"more may follow: --offset {offset + limit}")


@dlq_cli.command()
@redis_errors
def show(
    entry_id: str = typer.Argument(..., help="Entry id (the task id for task failures)."),
    queue: QueueOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one entry in full."""
    entry = public(_locate(dlq_reader(), entry_id, queue))
    if as_json:
        print_json(entry)
        return
    console.print(entry_table(entry_id, entry))


def _matching(
    reader: DLQReader, verb: str, ids: list[str] | None, flt: Filter, everything: bool
) -> list[tuple[str, str]]:
    """(queue, id) pairs a bulk command acts on; says so when there are none."""
    if ids:
        pairs = [(_locate(reader, entry_id, flt.queue)["queue"], entry_id) for entry_id in ids]
    elif not everything and flt == Filter():
        raise error("name entry ids, a filter (--queue/--task/--reason/--since/--until), or --all")
    else:
        # Materialise ids first: the operation below removes them from the index being read.
        pairs = [(e["queue"], e["id"]) for e in reader.iter_entries(flt)]
    if not pairs:
        console.print(f"nothing to {verb}: no entries match")
    return pairs


def _apply(
    pairs: Iterable[tuple[str, str]], total: int, label: str, operation: Callable[[str, str], bool]
) -> tuple[int, int]:
    done = missing = 0
    with Progress(console=_progress_console, transient=True, disable=total < 20) as progress:
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
@filter_options
def replay(
    entry_ids: EntryIds = None,
    flt: Filter = Filter(),
    everything: bool = typer.Option(False, "--all", help="Replay every entry."),
    to_queue: ToQueueOption = None,
    force: bool = typer.Option(
        False,
        "--force",
        help="Replay entries that would be refused (unreplayable message, minimal entry, task "
        "not registered here); they may come straight back.",
    ),
    as_json: JsonOption = False,
) -> None:
    """Re-enqueue entries and remove them from the DLQ, each in one atomic step. Entries that
    cannot be replayed are refused and kept whole (exit code 1), unless --force."""
    destination = None if to_queue is None else CATALOG.get(to_queue)
    writer = dlq_writer()
    reader = writer.reader
    resumed = writer.resume_claims()
    if resumed:
        console.print(f"finished {resumed} replays an earlier crash interrupted")
    pairs = _matching(reader, "replay", entry_ids, flt, everything)
    if not pairs:
        return

    registered = registered_tasks()
    refused: list[dict[str, str]] = []

    def one(source: str, entry_id: str) -> bool:
        entry = reader.get(source, entry_id)
        if entry is not None and not force:
            problem = replay_problem(entry, reader.envelope(source, entry_id), registered)
            if problem is not None:
                refused.append({"id": entry_id, "queue": source, "why": problem})
                return False
        if destination is None:
            return writer.replay(source, entry_id)
        return writer.replay(
            source, entry_id, destination.name, destination.exchange, destination.routing_key
        )

    done, missing = _apply(pairs, len(pairs), "replaying", one)
    report("replayed", done, missing - len(refused), as_json, refused)
    if refused:
        raise typer.Exit(1)


@dlq_cli.command()
@redis_errors
@filter_options
def purge(
    entry_ids: EntryIds = None,
    flt: Filter = Filter(),
    everything: bool = typer.Option(False, "--all", help="Purge every entry."),
    yes: bool = typer.Option(False, "--yes", help="Required: purging cannot be undone."),
    as_json: JsonOption = False,
) -> None:
    """Delete entries for good (requires --yes)."""
    writer = dlq_writer()
    pairs = _matching(writer.reader, "purge", entry_ids, flt, everything)
    if not pairs:
        return
    if not yes:
        raise error(f"purge would delete {len(pairs)} entries for good; add --yes to confirm")
    done, missing = _apply(pairs, len(pairs), "purging", writer.purge)
    report("purged", done, missing, as_json)


@dlq_cli.command()
@redis_errors
def stats(as_json: JsonOption = False) -> None:
    """Entry counts per queue and reason."""
    counts = dlq_reader().stats()
    rows = [
        {"queue": queue, "reason": reason, "count": n}
        for (queue, reason), n in sorted(counts.items())
    ]
    if as_json:
        print_json(rows, sort_keys=False)
        return
    if not rows:
        console.print("the dead-letter queue is empty")
        return
    console.print(stats_table(rows, sum(counts.values())))


@dlq_cli.command()
@redis_errors
def parked(as_json: JsonOption = False) -> None:
    """Messages parked because the DLQ refused every form of their entry (never run again)."""
    found = parked_messages(dlq_reader().client)
    rows = [
        {
            "field": p.field,
            "queue": p.queue,
            "id": p.entry_id,
            "task_name": p.task_name,
            "reason": p.reason,
            "error": p.error,
            "parked_at": p.parked_at,
        }
        for p in found
    ]
    if as_json:
        print_json(rows, sort_keys=False)
        return
    if not rows:
        console.print("no parked messages")
        return
    for row in rows:
        console.print(Text(" ".join(f"{k}={v}" for k, v in row.items())))
    console.print(
        f"{len(rows)} parked in fleet:dlq:parked: fix the key named in the error, then re-send "
        "or HDEL them"
    )
