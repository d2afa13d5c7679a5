"""`fleet results`: the PostgreSQL result store's tables and expiry, by hand.

`create-tables` lets an owner role create Celery's tables once, so the fleet itself can run
with a role that may only read and write rows; `cleanup` deletes expired rows now (what
beat's daily `celery.backend_cleanup` does). Both use CELERY_RESULT_BACKEND."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from service.cli_support import console, fail, settings_or_exit

results_cli = typer.Typer(
    help="The result store (PostgreSQL): create its tables, delete expired results.",
    no_args_is_help=True,
)


def _database_backend() -> Any:
    settings = settings_or_exit()
    if settings.result_backend_kind != "postgresql":
        fail(
            "CELERY_RESULT_BACKEND is a Redis URL: Redis needs no tables and expires "
            "results itself (key TTL)"
        )
    from service.app_factory import create_app

    return create_app(settings).backend


def _failed(what: str, exc: Exception) -> None:
    # The driver's message names host and role, never the password; keep it to one line.
    fail(f"{what} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


@results_cli.command("create-tables")
def create_tables() -> None:
    """Create Celery's result tables if missing (run once with a role that may CREATE)."""
    backend = _database_backend()
    try:
        backend.ResultSession().close()  # Celery creates missing tables on first session
    except Exception as exc:
        _failed("creating the result tables", exc)
    names = ", ".join(
        table.name for table in (backend.task_cls.__table__, backend.taskset_cls.__table__)
    )
    console.print(f"result tables ready: {escape(names)}", highlight=False)


@results_cli.command()
def cleanup() -> None:
    """Delete results older than FLEET_RESULT_EXPIRES now (beat does it daily at 04:00 UTC)."""
    backend = _database_backend()
    try:
        backend.cleanup()
    except Exception as exc:
        _failed("deleting expired results", exc)
    console.print("expired results deleted", highlight=False)
