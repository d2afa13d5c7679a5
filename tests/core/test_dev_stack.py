"""`fleet dev` end to end: the whole stack on free ports, the demo workload through every
README path, the JSON summary, and a clean stop (duration, Ctrl-C, a component dying) with
no process left behind and every port freed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import urllib.request
from pathlib import Path

from dev_harness import PORT_OPTIONS, cmdline, listening, start_dev
from harness import free_port, require_binary, wait_until
from prometheus_client.parser import text_string_to_metric_families

from service.catalog.queues import CATALOG

DESIGNED_DLQ = {"max_retries_exceeded": 1, "non_retryable_error": 3, "malformed_body": 1}


def metric_total(url: str, name: str) -> float:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


def test_fleet_dev_duration_json_summary(tmp_path: Path) -> None:
    require_binary("redis-server")
    # Given free ports, except Flower's, which something already listens on
    ports = {name: free_port() for name in PORT_OPTIONS}
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", ports["flower"]))
    squatter.listen()
    try:
        # When `fleet dev` runs for 30 s with a JSON summary
        dev = start_dev(tmp_path, "--duration", "30", "--json-summary", ports=ports)
        try:
            code = dev.wait_sampling(240)
        finally:
            dev.kill()
    finally:
        squatter.close()
    assert code == 0, dev.err()[-4000:]
    summary = json.loads(dev.out())  # stdout is exactly one JSON object
    assert "celery-fleet dev" in dev.err()  # the human view went to stderr

    # Then every catalog queue ran tasks to success (read from the worker's metrics)
    for queue in CATALOG.names:
        assert summary["queues"][queue]["succeeded"] > 0, (queue, summary["queues"][queue])
    assert summary["workers"] == {"alive": 1, "expected": 1}
    assert summary["exporter_up"] is True
    # and the DLQ holds exactly the designed failures and the poison message
    assert summary["dlq"]["by_reason"] == DESIGNED_DLQ, summary["dlq"]
    assert summary["dlq"]["by_queue"]["default"]["malformed_body"] == 1
    # and every designed task of every README path ended as designed
    not_as_designed = [row for row in summary["designed"] if not row["as_designed"]]
    assert not not_as_designed, not_as_designed
    assert set(summary["paths"]) >= {
        "routing by type",
        "dynamic router: premium tier",
        "dynamic router: large payload",
        "call-time override",
        "priorities",
        "retries that recover",
        "retries that exhaust",
        "permanent error",
        "poison message",
    }
    assert summary["queues"]["email"]["retried"] >= 1  # the SMTP sink's deliberate 451
    assert summary["smtp_sink"]["deferred"] >= 1
    # and the cluster-wide limit held: 25 calls at once, never more than the limit per window
    rate = summary["rate_limit"]
    assert rate["api_stub_calls"] >= 25 and rate["granted"] >= 25
    assert 0 < rate["max_granted_in_window"] <= rate["limit"], rate
    assert summary["queues"]["analytics"]["retried"] > 0  # callers waited for a slot
    # and the taken port moved, and the table said where
    assert summary["ports_moved"] == {"flower": ports["flower"]}
    assert f"({ports['flower']} was taken)" in summary["endpoints"]["flower"]
    assert summary["ports"]["flower"] != ports["flower"]
    if shutil.which("prometheus"):
        firing = {a["alertname"] for a in summary["alerts"] if a["state"] == "firing"}
        assert "CeleryDeadLetterQueueReceiving" in firing, summary["alerts"]
    # and Flower's generated password was printed once, on the human side only
    assert dev.err().count("fleet / ") == 1
    # And afterwards nothing it started is alive and every port is free again
    assert dev.seen_pgids, "no child process was ever seen"
    assert dev.survivors() == []
    assert all(c["exit_code"] is not None for c in summary["components"].values())
    assert [p for p in summary["ports"].values() if listening(p)] == []


def test_fleet_dev_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    require_binary("redis-server")
    dev = start_dev(tmp_path)
    try:
        # Given the stack running the demo workload
        worker = f"http://127.0.0.1:{dev.ports['worker-metrics']}/metrics"
        wait_until(
            lambda: metric_total(worker, "celery_task_succeeded_total") >= 5,
            120,
            interval=0.5,
            message="demo tasks succeed",
        )
        dev.sample()
        # When the user presses Ctrl-C (SIGINT to the foreground process group)
        os.killpg(dev.process.pid, signal.SIGINT)
        code = dev.wait_sampling(120)
    finally:
        dev.kill()
    # Then it exits 0, having stopped every process it started and freed every port
    assert code == 0, dev.err()[-4000:]
    assert "stopped (SIGINT)" in dev.out()
    assert dev.survivors() == []
    assert [p for p in dev.ports.values() if listening(p)] == []
    # and, not on a terminal, the live view was plain lines with per-queue figures
    assert "email" in dev.out() and "succeeded=" in dev.out()


def test_a_component_dying_early_is_reported(tmp_path: Path) -> None:
    require_binary("redis-server")
    dev = start_dev(tmp_path, "--no-demo", "--json-summary")
    try:
        exporter_url = f"http://127.0.0.1:{dev.ports['exporter']}/metrics"
        wait_until(
            lambda: metric_total(exporter_url, "celery_exporter_up") == 1, 90, message="exporter"
        )
        exporter = [pid for pid in dev.sample() if " exporter --port" in cmdline(pid)]
        assert len(exporter) == 1, [cmdline(p) for p in dev.sample()]
        # When the exporter dies on its own
        os.kill(exporter[0], signal.SIGKILL)
        code = dev.wait_sampling(120)
    finally:
        dev.kill()
    # Then fleet dev says which one, shows the tail of its log, stops the rest, exits non-zero
    assert code == 1, dev.err()[-4000:]
    failure = json.loads(dev.out())["failure"]
    assert failure["component"] == "exporter" and failure["exit_code"] == -signal.SIGKILL
    assert failure["log_tail"].strip()
    assert "exporter exited with code" in dev.err()
    assert failure["log_tail"].splitlines()[-1] in dev.err()
    assert dev.survivors() == []
    assert [p for p in dev.ports.values() if listening(p)] == []
