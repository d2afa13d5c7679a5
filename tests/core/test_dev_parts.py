"""The parts of `fleet dev` one at a time: port planning, the local SMTP sink and API stub,
process-group clean-up, and the plain-line view."""

from __future__ import annotations

import json
import smtplib
import socket
import sys
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness import free_port

from service.catalog.queues import CATALOG
from service.dev import processes
from service.dev.observe import Snapshot
from service.dev.ports import plan_ports, port_free
from service.dev.processes import ProcessSet, log_tail
from service.dev.stubs import ApiLog, start_stubs
from service.dev.view import plain_lines


def test_a_taken_port_moves_and_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        free = free_port()
        plan = plan_ports({"flower": busy, "exporter": free, "redis": busy}, skip={"redis"})
    assert plan["exporter"] == free and "exporter" not in plan.moved
    assert plan.moved == {"flower": busy}
    assert plan["flower"] != busy and plan.note("flower") == f" ({busy} was taken)"
    assert plan["redis"] == busy  # an existing Redis we only connect to keeps its port


def test_two_components_never_share_a_port() -> None:
    port = free_port()
    plan = plan_ports({"a": port, "b": port})
    assert plan["a"] == port and plan["b"] != port and plan.moved == {"b": port}


def test_api_log_counts_calls_within_any_window() -> None:
    log = ApiLog(times=[0.0, 0.1, 0.5, 0.99, 1.0, 1.05, 3.0])
    assert log.max_in_window(1.0) == 5  # 0.1 .. 1.05
    assert log.max_in_window(0.5) == 3  # 0.99, 1.0, 1.05
    assert log.max_in_window(0.05) == 2  # 0.99, 1.0


def _mail(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", to, "hi"
    message["Message-ID"] = f"<{to}-1@test>"
    message.set_content("hello")
    return message


def test_smtp_sink_defers_flaky_recipients_once_and_api_stub_answers() -> None:
    stubs = start_stubs(free_port(), free_port())
    try:
        with smtplib.SMTP("127.0.0.1", stubs.smtp_port, timeout=5) as smtp:
            smtp.send_message(_mail("ada@example.com"))
        with smtplib.SMTP("127.0.0.1", stubs.smtp_port, timeout=5) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as deferred:
                smtp.send_message(_mail("flaky@example.com"))
            assert deferred.value.smtp_code == 451
            smtp.send_message(_mail("flaky@example.com"))  # the retry is delivered
        assert (stubs.mailbox.delivered, stubs.mailbox.deferred) == (2, 1)
        with urllib.request.urlopen(f"{stubs.api_url}?event=e1", timeout=5) as response:
            assert json.loads(response.read())["path"] == "/enrich?event=e1"
        assert len(stubs.api_log.times) == 1
    finally:
        stubs.stop()
    assert port_free(stubs.smtp_port)


def test_stop_clears_a_group_whose_leader_already_exited(tmp_path: Path) -> None:
    # The leader exits at once and leaves a grandchild in its process group (as a Celery
    # worker killed hard leaves its pool children): the old code only signalled live leaders.
    procs = ProcessSet(tmp_path, tmp_path)
    orphaner = procs.spawn("orphaner", ["sh", "-c", "sleep 300 & echo started"], {})
    orphaner.process.wait(10)
    assert orphaner.group_alive()
    procs.stop([], force=lambda: False)
    assert not orphaner.group_alive()
    assert "started" in log_tail(orphaner.log)


def test_stop_kills_what_ignores_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "STOP_TIMEOUT", 1.0)
    procs = ProcessSet(tmp_path, tmp_path)
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    stubborn = procs.spawn("stubborn", [sys.executable, "-c", code], {})
    time.sleep(0.5)  # let it install the handler
    started = time.monotonic()
    procs.stop([["stubborn"]], force=lambda: False)
    assert not stubborn.group_alive()
    assert stubborn.exit_code() == -9
    assert time.monotonic() - started < 15


def test_log_tail_reads_only_the_end(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {n}\n" for n in range(100_000)))
    assert log_tail(log, lines=3).splitlines() == ["line 99997", "line 99998", "line 99999"]
    assert log_tail(tmp_path / "missing.log") == "(no log)"


def test_plain_lines_show_every_queue_totals_and_alerts() -> None:
    queues = {name: {"waiting": 2.0, "succeeded": 5.0} for name in CATALOG.names}
    queues["email"]["oldest_waiting_seconds"] = 3.5
    snapshot = Snapshot(0.0, queues, 1, 1, True, None, {"malformed_body": 1}, {})
    lines = plain_lines(snapshot, 12.0, ("note",))
    for name in CATALOG.names:
        assert any(f"] {name} " in line for line in lines)
    total = next(line for line in lines if "] total " in line)
    assert f"waiting={2 * len(CATALOG.names)}" in total and "oldest_waiting=3.5s" in total
    assert any("alerts: no Prometheus" in line for line in lines)
    assert any("DLQ by reason: malformed_body 1" in line for line in lines)
    assert lines[-1].endswith("note")
