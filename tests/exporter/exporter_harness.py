"""Runs the real `python -m service exporter` subprocess and scrapes it over HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import REPO, free_port, wait_until
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Scrape:
    """One /metrics answer: sample name -> {label items: value}."""

    samples: dict[str, dict[tuple[tuple[str, str], ...], float]]
    seconds: float  # how long the HTTP request took

    @classmethod
    def parse(cls, text: str, seconds: float) -> Scrape:
        samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                samples.setdefault(sample.name, {})[labels] = sample.value
        return cls(samples, seconds)

    def by_queue(self, name: str) -> dict[str, float]:
        return {dict(labels)["queue"]: value for labels, value in self.series(name).items()}

    def series(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return self.samples.get(name, {})

    def value(self, name: str) -> float:
        series = self.series(name)
        assert len(series) == 1, f"{name}: expected one series, got {series}"
        return next(iter(series.values()))

    def errors_total(self) -> float:
        return sum(self.series("celery_exporter_errors_total").values())


@dataclass
class Exporter:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def get(self, path: str, timeout: float = 10) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def scrape(self) -> Scrape:
        started = time.monotonic()
        status, text = self.get("/metrics")
        assert status == 200, f"/metrics answered {status}: {text}\n{self.log()}"
        return Scrape.parse(text, time.monotonic() - started)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM; returns the exit code (0 is a clean shutdown)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                raise AssertionError(f"exporter ignored SIGTERM:\n{self.log()}") from None
        return int(self.process.returncode)


def _answers(exporter: Exporter) -> bool:
    if exporter.process.poll() is not None:
        raise AssertionError(f"exporter exited at start:\n{exporter.log()}")
    with contextlib.suppress(OSError):
        return exporter.get("/healthz", timeout=1)[0] == 200
    return False


@contextlib.contextmanager
def run_exporter(broker_url: str, tmp_path: Path) -> Iterator[Exporter]:
    port = free_port()
    env = dict(os.environ)
    env.update({"CELERY_BROKER_URL": broker_url, "PYTHONUNBUFFERED": "1"})
    env.pop("CELERY_RESULT_BACKEND", None)
    env.pop("FLEET_DLQ_URL", None)
    log_path = tmp_path / f"exporter-{port}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "exporter", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    exporter = Exporter(process, port, log_path)
    try:
        wait_until(lambda: _answers(exporter), 30, message="exporter /healthz")
        yield exporter
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
