"""`fleet`: the operator CLI (also `python -m service`)."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from service.catalog.naming import EXPORTER_PORT, FLOWER_PORT, REDIS_PORT, WORKER_METRICS_PORT
from service.catalog.queues import CATALOG
from service.config.settings import FleetSettings, load_settings
from service.errors import FleetError, SettingsError
from service.worker.fsutil import empty_dir

cli = typer.Typer(
    name="fleet",
    help="Run and operate celery-fleet: workers, exporter, probes, the dead-letter queue.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_or_exit() -> FleetSettings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc))


def _check_queues(queues: str) -> list[str]:
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if not names:
        fail("-Q needs at least one queue name")
    for name in names:
        if name not in CATALOG:
            fail(f"unknown queue {name!r}; known queues: {', '.join(CATALOG.names)}")
    return names


_TIME_LIMIT_OPTIONS = ("--time-limit", "--soft-time-limit")


def _check_time_limits(args: list[str], settings: FleetSettings) -> None:
    """A time limit given on the command line must be a finite number of seconds below the
    visibility timeout; otherwise Redis re-delivers the running task and it runs twice."""
    for index, arg in enumerate(args):
        option, _, inline = arg.partition("=")
        if option not in _TIME_LIMIT_OPTIONS:
            continue
        raw = inline if inline else (args[index + 1] if index + 1 < len(args) else "")
        try:
            seconds = float(raw)
        except ValueError:
            fail(f"{option} needs a number of seconds, got {raw!r}")
        if not math.isfinite(seconds) or seconds <= 0:
            fail(f"{option} must be a positive finite number of seconds, got {raw!r}")
        if seconds >= settings.visibility_timeout and not settings.allow_short_visibility_timeout:
            fail(
                f"{option} {raw} must be below FLEET_VISIBILITY_TIMEOUT "
                f"({settings.visibility_timeout}s); otherwise Redis re-delivers running tasks "
                "and they run twice"
            )


def _exec_celery(args: list[str]) -> NoReturn:
    argv = [sys.executable, "-m", "celery", "-A", "service", *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


@cli.command(context_settings=_PASSTHROUGH)
def worker(
    ctx: typer.Context,
    queues: str = typer.Option(..., "-Q", "--queues", help="Comma-separated catalog queues."),
) -> None:
    """Prepare the metrics and heartbeat dirs, then exec `celery -A service worker`.

    Extra options go to Celery unchanged (e.g. `-c 2 --hostname w1@%h`)."""
    settings = settings_or_exit()
    names = _check_queues(queues)
    _check_time_limits(ctx.args, settings)
    # Multiprocess metrics: a dir shared by the main process and the pool children. Empty it:
    # files from a previous run would be counted again (and belong to dead pids).
    metrics_dir = settings.metrics_dir
    empty_dir(metrics_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    settings.heartbeat_file.parent.mkdir(parents=True, exist_ok=True)
    settings.heartbeat_file.unlink(missing_ok=True)
    args = ["worker", "-Q", ",".join(names), "--loglevel", settings.log_level]
    # Gossip makes every worker consume every other worker's events (N^2 at fleet scale);
    # without task events nothing reads the 2 s worker heartbeats either.
    args.append("--without-gossip")
    if not settings.task_events:
        args.append("--without-heartbeat")
    _exec_celery([*args, *ctx.args])


@cli.command(context_settings=_PASSTHROUGH)
def beat(ctx: typer.Context) -> None:
    """Exec `celery -A service beat`. Run exactly one beat per deployment."""
    settings = settings_or_exit()
    settings.beat_schedule_file.parent.mkdir(parents=True, exist_ok=True)
    _exec_celery(
        [
            "beat",
            "--schedule",
            str(settings.beat_schedule_file),
            "--loglevel",
            settings.log_level,
            *ctx.args,
        ]
    )


@cli.command(context_settings=_PASSTHROUGH)
def flower(ctx: typer.Context) -> None:
    """Exec Flower with the port and basic auth from settings.

    Flower serves /metrics and /healthcheck WITHOUT auth: keep its port on the cluster
    network (the infra's NetworkPolicy does)."""
    settings = settings_or_exit()
    if settings.flower_basic_auth is not None:
        # Through the environment, not argv: argv is visible in `ps` and /proc.
        os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    _exec_celery(["flower", f"--port={settings.flower_port}", *ctx.args])


@cli.command()
def exporter(
    port: int = typer.Option(
        EXPORTER_PORT, "--port", min=1, max=65535, help="HTTP port for /metrics."
    ),
    address: str = typer.Option("0.0.0.0", "--address", help="Listen address."),
) -> None:
    """Serve queue lengths, oldest task age and DLQ sizes for Prometheus (and autoscalers)."""
    from service.exporter.server import serve
    from service.worker.logs import configure_logging

    configure_logging(settings_or_exit())
    serve(port=port, address=address)


@cli.command()
def probe(
    max_age: float | None = typer.Option(None, help="Seconds; default FLEET_HEARTBEAT_MAX_AGE."),
) -> None:
    """Liveness probe: exit 0 when the worker heartbeat is fresh, 1 when stale or missing."""
    from service.worker.heartbeat import age_seconds

    settings = settings_or_exit()
    limit = settings.heartbeat_max_age if max_age is None else max_age
    age = age_seconds(settings.heartbeat_file)
    if age is None:
        err_console.print(f"stale: no heartbeat file at {settings.heartbeat_file}")
        raise typer.Exit(1)
    if age > limit:
        err_console.print(f"stale: last heartbeat {age:.1f}s ago (limit {limit:.0f}s)")
        raise typer.Exit(1)
    console.print(f"ok: last heartbeat {age:.1f}s ago")


def catalog_markdown() -> str:
    """The catalog as the Markdown table in README.md (a test keeps the two in sync)."""
    lines = [
        "| queue | exchange / routing key | task patterns | priorities | concurrency | prefetch "
        "| soft / hard limit (s) | max wait (s) | replicas | backlog per replica |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for q in CATALOG:
        patterns = ", ".join(f"`{p}`" for p in q.task_patterns) or "(dynamic router only)"
        lines.append(
            f"| `{q.name}` | {q.exchange} / {q.routing_key} | {patterns} "
            f"| {'yes' if q.supports_priority else 'no'} | {q.concurrency} "
            f"| {q.prefetch_multiplier} | {q.soft_time_limit} / {q.hard_time_limit} "
            f"| {q.max_wait_seconds} "
            f"| {q.autoscaling.min_replicas}..{q.autoscaling.max_replicas} "
            f"| {q.autoscaling.backlog_per_replica} |"
        )
    return "\n".join(lines)


@cli.command()
def queues(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    markdown: bool = typer.Option(False, "--markdown", help="The README's Markdown table."),
) -> None:
    """List the queue catalog."""
    if markdown:
        print(catalog_markdown())
        return
    rows = [
        {
            "name": q.name,
            "exchange": q.exchange,
            "routing_key": q.routing_key,
            "task_patterns": list(q.task_patterns),
            "priorities": q.supports_priority,
            "concurrency": q.concurrency,
            "prefetch": q.prefetch_multiplier,
            "soft_time_limit": q.soft_time_limit,
            "hard_time_limit": q.hard_time_limit,
            "max_wait_seconds": q.max_wait_seconds,
            "min_replicas": q.autoscaling.min_replicas,
            "max_replicas": q.autoscaling.max_replicas,
            "backlog_per_replica": q.autoscaling.backlog_per_replica,
        }
        for q in CATALOG
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Queue catalog")
    for column in (
        "name",
        "routing_key",
        "task_patterns",
        "priorities",
        "concurrency",
        "prefetch",
        "soft/hard (s)",
        "max wait (s)",
        "replicas",
        "backlog/replica",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["routing_key"]),
            ", ".join(row["task_patterns"]) or "(dynamic only)",  # type: ignore[arg-type]
            "yes" if row["priorities"] else "no",
            str(row["concurrency"]),
            str(row["prefetch"]),
            f"{row['soft_time_limit']}/{row['hard_time_limit']}",
            str(row["max_wait_seconds"]),
            f"{row['min_replicas']}..{row['max_replicas']}",
            str(row["backlog_per_replica"]),
        )
    console.print(table)


@cli.command()
def dev(
    duration: float | None = typer.Option(
        None, min=1, help="Stop this many seconds after the worker is up (default: Ctrl-C)."
    ),
    demo: bool = typer.Option(True, "--demo/--no-demo", help="Send the demo workload."),
    json_summary: bool = typer.Option(
        False, "--json-summary", help="At the end, one JSON object on stdout (view on stderr)."
    ),
    redis_port: int = typer.Option(
        REDIS_PORT, min=1, max=65535, help="Redis, when none answers at the broker URL."
    ),
    worker_metrics_port: int = typer.Option(
        WORKER_METRICS_PORT, min=1, max=65535, help="Worker /metrics port."
    ),
    exporter_port: int = typer.Option(EXPORTER_PORT, min=1, max=65535, help="Queue exporter port."),
    flower_port: int = typer.Option(FLOWER_PORT, min=1, max=65535, help="Flower port."),
    prometheus_port: int = typer.Option(
        9090, min=1, max=65535, help="Prometheus port (if installed)."
    ),
    smtp_port: int = typer.Option(
        8025, min=1, max=65535, help="Local SMTP sink for the email tasks."
    ),
    api_port: int = typer.Option(
        8099, min=1, max=65535, help="Local stand-in for the external API."
    ),
) -> None:
    """Run the whole stack locally with a demo workload and a live view.

    Redis (started when none answers), one worker consuming every queue, beat, the exporter,
    Flower and, when installed, Prometheus with the alert rules. A taken port moves to a
    free one (the table says where). Ctrl-C or --duration stops everything."""
    from service.dev.runner import Options, run

    settings = settings_or_exit()
    ports = {
        "redis": redis_port,
        "worker_metrics": worker_metrics_port,
        "exporter": exporter_port,
        "flower": flower_port,
        "prometheus": prometheus_port,
        "smtp": smtp_port,
        "external_api": api_port,
    }
    raise typer.Exit(run(settings, Options(duration, demo, json_summary, ports)))


def _register_subcommands() -> None:
    from service.dlq.cli import dlq_cli

    cli.add_typer(dlq_cli, name="dlq")


def main() -> None:
    _register_subcommands()
    try:
        # standalone_mode=False would change typer's exit handling; catch our errors here,
        # outside typer, so they print as one clean line with exit code 2.
        cli()
    except FleetError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
