"""`fleet`: the operator CLI (also `python -m service`)."""

from __future__ import annotations

import json
import os
import sys

import typer
from rich.markup import escape
from rich.table import Table

from service.catalog.naming import EXPORTER_PORT, FLOWER_PORT, REDIS_PORT, WORKER_METRICS_PORT
from service.catalog.queues import CATALOG
from service.cli_support import celery_settings_or_exit, console, err_console, settings_or_exit
from service.dlq.cli import dlq_cli
from service.errors import FleetError
from service.results_cli import results_cli
from service.worker.launch import exec_celery, worker_args

cli = typer.Typer(
    name="fleet",
    help="Run and operate celery-fleet: workers, exporter, probes, the dead-letter queue.",
    no_args_is_help=True,
    add_completion=False,
)
_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@cli.command(context_settings=_PASSTHROUGH)
def worker(
    ctx: typer.Context,
    queues: str = typer.Option(..., "-Q", "--queues", help="Comma-separated catalog queues."),
) -> None:
    """Prepare the metrics and heartbeat dirs, then exec `celery -A service worker`.

    Extra options go to Celery unchanged (e.g. `-c 2 --hostname w1@%h`)."""
    exec_celery(worker_args(celery_settings_or_exit(), queues, ctx.args))


@cli.command(context_settings=_PASSTHROUGH)
def beat(ctx: typer.Context) -> None:
    """Exec `celery -A service beat` with the Redis-backed, locked schedule (celery-redbeat).

    Any number may run: one holds the lock in Redis and sends, the others wait to take over."""
    settings = celery_settings_or_exit()  # refuses a cluster broker with the reason
    exec_celery(
        ["beat", "--scheduler", "redbeat.RedBeatScheduler", "--loglevel", settings.log_level,
         *ctx.args]
    )  # fmt: skip


@cli.command(context_settings=_PASSTHROUGH)
def flower(ctx: typer.Context) -> None:
    """Exec Flower with the port and basic auth from settings.

    Flower serves /metrics and /healthcheck WITHOUT auth: keep its port on the cluster
    network (the infra's NetworkPolicy does)."""
    settings = celery_settings_or_exit()
    if settings.flower_basic_auth is not None:
        # Through the environment, not argv: argv is visible in `ps` and /proc.
        os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    exec_celery(["flower", f"--port={settings.flower_port}", *ctx.args])


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
    """Liveness probe: exit 0 when the worker heartbeat is fresh, 1 when stale or missing.

    Pods run the same check without the CLI: `python -m service.liveness`."""
    from service.liveness import check

    settings = settings_or_exit()
    limit = settings.heartbeat_max_age if max_age is None else max_age
    alive, line = check(settings.heartbeat_file, limit)
    if not alive:
        err_console.print(line)
        raise typer.Exit(1)
    console.print(line)


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
    from service.dev.run import Options
    from service.dev.runner import run

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


def _with_app() -> None:
    """`fleet dlq` caps task names in its index keys to the tasks the app registers, as the
    worker that wrote them did. Built here, on the DLQ commands' way in, not on import:
    building it reads the settings and imports every task module, which other commands
    (the liveness probe runs every few seconds) need not pay for."""
    from service import app

    app.loader.import_default_modules()


def _register_subcommands() -> None:
    cli.add_typer(dlq_cli, name="dlq", callback=_with_app)
    cli.add_typer(results_cli, name="results")


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
