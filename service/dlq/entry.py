"""The shape of a dead-letter entry: what capture writes, the store keeps as JSON, the CLI
shows and `--json` prints. Entries are read back from Redis, so the type documents the
stored form; older entries may lack the NotRequired fields."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# The message replay pushes back: a kombu Redis envelope, {"raw": base64} for bytes that
# never were one, or {"unreplayable": why}.
Envelope = dict[str, Any]


class DLQEntry(TypedDict):
    id: str
    task_id: str | None
    task_name: str
    queue: str
    reason: str
    exception_type: str | None
    exception_message: str | None
    traceback: str
    retries: int
    first_failure_at: float
    last_failure_at: float
    worker: str
    occurrences: int
    args: list[Any]
    kwargs: dict[str, Any]
    # Masked, bounded text of the body (poison messages and raw bytes only).
    raw_body: str | None
    raw_body_bytes: NotRequired[int | None]
    content_type: NotRequired[str | None]
    # Set on the minimal entry written when Redis refused the full one for its content.
    dlq_write_error: NotRequired[str]
    minimal: NotRequired[bool]
