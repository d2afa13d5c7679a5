"""`fleet dlq` option parsing: names come from the catalog and Reason, the five filter
options are declared once and reach list/replay/purge as one Filter. No Redis: every case
here is refused (or answered) before the store is opened."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from service.catalog.queues import CATALOG
from service.cli import _register_subcommands, cli
from service.dlq.cli_options import QUEUE_NAMES, REASON_NAMES, filter_options
from service.dlq.reader import Filter
from service.dlq.reasons import Reason

runner = CliRunner()
_register_subcommands()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--queue", "mail"], "unknown queue 'mail'; known queues: default"),
        (["list", "--reason", "bad"], "unknown reason 'bad'; known reasons: max_retries"),
        (["replay", "--all", "--to-queue", "nope"], "unknown queue 'nope'"),
        (["purge", "-q", "emial", "--yes"], "unknown queue 'emial'"),
        (["show", "x", "--queue", "[bold]"], "unknown queue '[bold]'"),
    ],
)
def test_unknown_names_are_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(cli, ["dlq", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())


@pytest.mark.parametrize("command", ["list", "replay", "purge"])
def test_filter_options_are_shared_and_list_the_names(command: str) -> None:
    result = runner.invoke(cli, ["dlq", command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    for option in ("--queue", "--task", "--reason", "--since", "--until"):
        assert option in result.output
    assert ", ".join(CATALOG.names) in result.output
    assert ", ".join(r.value for r in Reason) in result.output


def test_parsers_accept_exactly_the_known_names() -> None:
    assert [QUEUE_NAMES(name) for name in CATALOG.names] == list(CATALOG.names)
    assert [REASON_NAMES(r.value) for r in Reason] == [r.value for r in Reason]
    with pytest.raises(typer.BadParameter):
        QUEUE_NAMES("Default")


def test_filter_options_build_one_filter() -> None:
    seen: list[Filter] = []
    app = typer.Typer()

    @app.command()
    @filter_options
    def probe(flt: Filter = Filter(), extra: int = 0) -> None:
        seen.append(flt)

    result = runner.invoke(
        app, ["-q", "email", "-t", "a.b", "-r", "unknown_task", "--until", "2026-01-01T00:00:00"]
    )
    assert result.exit_code == 0, result.output
    assert seen == [Filter("email", "a.b", "unknown_task", None, 1_767_225_600_000)]
    bad_time = runner.invoke(app, ["--since", "yesterday"])
    assert bad_time.exit_code == 2 and "neither ISO 8601 nor an age" in bad_time.output
