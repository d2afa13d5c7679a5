"""Which dead-letter entries `fleet dlq replay` refuses, and why.

Replaying an entry whose message cannot run again only put it back in the DLQ, poorer than
before (its exception text and traceback replaced by the poison check's). Refused, unless
`--force`: an entry whose message could not be stored (`unreplayable`), a minimal entry
(written when Redis refused the full one for its content: its message may be the hostile
part), a message that names no task, or one whose task this code does not register (a
renamed or removed task). Raw bytes that never were a message (`malformed_envelope`) go back
verbatim: that is their replay, after a consumer fix."""

from __future__ import annotations

from collections.abc import Callable

from service import task_names
from service.dlq.entry import DLQEntry, Envelope


def replay_problem(
    entry: DLQEntry, envelope: Envelope | None, registered: Callable[[str], bool]
) -> str | None:
    """Why the entry cannot be replayed, or None when it can."""
    if envelope is None:
        return None  # gone meanwhile: the replay itself reports it
    if "unreplayable" in envelope:
        return f"its message could not be stored ({str(envelope['unreplayable'])[:200]})"
    if entry.get("minimal"):
        return "it is a minimal entry (Redis refused the full one for its content)"
    if "raw" in envelope:
        return None
    headers = envelope.get("headers")
    task = headers.get("task") if isinstance(headers, dict) else None
    if not isinstance(task, str):
        return "its message names no task"
    if not registered(task):
        return f"task {task[:200]!r} is not registered in this version of the code"
    return None


def registered_tasks() -> Callable[[str], bool]:
    """A check against the tasks this code registers (installed by the app factory)."""
    return task_names.registered().__contains__
