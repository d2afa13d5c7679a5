"""A real Prometheus scrapes a real prefork worker and the exporter while tasks succeed,
fail, retry and dead-letter. Every dashboard query and alert expression must parse, every
panel query (kube-state-metrics aside) must return data, every metric a rule names must
exist, and the counts Prometheus sees must equal the tasks sent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from harness import REPO, free_port, require_binary, wait_until

from service.catalog.queues import Priority

ALERT_FILES = sorted((REPO / "alerts").glob("*.yaml"))


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())

    def query(self, expr: str) -> Any:
        return self.get("/api/v1/query", query=expr)

    def value(self, expr: str) -> float | None:
        result = self.query(expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False


@pytest.fixture
def exporter(redis_client: redis.Redis, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    log = open(tmp_path / "exporter.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service",
            "exporter",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield port
    process.terminate()
    process.wait(10)
    log.close()


def start_prometheus(tmp_path: Path, targets: dict[str, int]) -> tuple[Prometheus, Any]:
    binary = require_binary("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in ALERT_FILES],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}
            for job, target in targets.items()
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed by the caller
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    prometheus = Prometheus(port)
    wait_until(prometheus.ready, 30, message="prometheus ready")
    return prometheus, (process, log)


def rule_expressions() -> list[tuple[str, str]]:
    exprs = []
    for path in ALERT_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs.append((rule.get("alert") or rule.get("record"), rule["expr"]))
    return exprs


def test_dashboards_and_alerts_against_real_prometheus(
    celery_app: Any,
    redis_client: redis.Redis,
    worker_factory: Any,
    exporter: int,
    tmp_path: Path,
) -> None:
    from dashboards.expressions import all_panel_expressions

    # Given a prefork worker (2 children) and the exporter, scraped every second
    worker = worker_factory("default", concurrency=2)
    prometheus, (process, log) = start_prometheus(
        tmp_path, {"celery-workers": worker.metrics_port, "celery-exporter": exporter}
    )
    try:
        # When tasks succeed, fail into the DLQ and retry, and work waits in another queue
        results = [
            celery_app.send_task("service.tasks.diagnostics.noop", args=[i]) for i in range(200)
        ]
        results += [
            celery_app.send_task("service.tasks.diagnostics.flaky", args=[f"p{i}", 1])
            for i in range(3)
        ]
        failures = [
            celery_app.send_task("service.tasks.diagnostics.fail", args=[f"x{i}"]) for i in range(5)
        ]
        for result in results:
            result.get(timeout=60)
        for result in failures:
            result.get(timeout=60, propagate=False)
        for priority in (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW):
            celery_app.send_task(
                "service.tasks.reports.generate_custom_report",
                args=[{"name": "wait"}],
                priority=int(priority),
            )

        # Then Prometheus sees exact totals, not 1/concurrency of them
        wait_until(
            lambda: prometheus.value("sum(celery_task_succeeded_total)") == 203,
            60,
            interval=0.5,
            message="203 successes in Prometheus",
        )
        assert prometheus.value("sum(celery_task_started_total)") == 211
        assert prometheus.value("sum(celery_task_retried_total)") == 3
        assert prometheus.value("sum(celery_task_dead_lettered_total)") == 5
        assert (
            prometheus.value('sum(celery_task_failed_total{exception="PermanentTaskError"})') == 5
        )
        wait_until(
            lambda: prometheus.value('celery_queue_length{queue="reports"}') == 4,
            30,
            message="all 4 priority sub-lists counted",
        )
        assert prometheus.value('celery_dlq_length{queue="default"}') == 5
        assert prometheus.value("celery_exporter_up") == 1

        # And every dashboard query parses; those not needing kube-state-metrics return data
        panels = all_panel_expressions()
        assert len(panels) > 20
        for title, expr, needs_ksm in panels:
            if needs_ksm:
                reply = prometheus.query(expr)
                assert reply["status"] == "success", (title, expr, reply)
                continue
            wait_until(
                lambda e=expr: prometheus.query(e)["data"]["result"],
                30,
                message=f"data for panel {title!r}: {expr}",
            )

        # And every alert expression parses, all rule groups are healthy, and every celery
        # metric a rule names exists in Prometheus
        names = set(prometheus.get("/api/v1/label/__name__/values")["data"])
        for alert, expr in rule_expressions():
            reply = prometheus.query(expr)
            assert reply["status"] == "success", (alert, expr, reply)
            for metric in set(re.findall(r"\b(celery_[a-z_]+)\b", expr)):
                assert metric in names, (alert, metric)
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        assert groups
        for group in groups:
            for rule in group["rules"]:
                assert rule["health"] == "ok", rule
    finally:
        process.terminate()
        process.wait(10)
        log.close()
