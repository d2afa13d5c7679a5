"""What every `fleet` command shares: the consoles, one-line errors, settings or exit 2."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from service.config.settings import FleetSettings, load_settings
from service.errors import SettingsError

console = Console()
err_console = Console(stderr=True)


def error(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as one line on stderr; the caller raises the returned Exit."""
    # User input and message data are never Rich markup: `[/bold]` in a task name is text.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def fail(message: str, code: int = 2) -> NoReturn:
    raise error(message, code)


def settings_or_exit() -> FleetSettings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc))


def celery_settings_or_exit() -> FleetSettings:
    """Settings for a command that runs Celery (worker, beat, Flower): also exit 2 when a URL
    points Celery at something it cannot use on a Redis Cluster (stored results)."""
    from service.config.cluster_mode import celery_refusal

    settings = settings_or_exit()
    refusal = celery_refusal(settings)
    if refusal is not None:
        fail(refusal)
    return settings
