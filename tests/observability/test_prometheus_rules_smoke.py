"""A real Prometheus loads the generated rule files and evaluates every group cleanly."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


@pytest.fixture
def prometheus_url(prometheus_binary: str, tmp_path: Path) -> Iterator[str]:
    rule_files = sorted(str(p) for p in (REPO / "alerts").glob("*.yaml"))
    config = {
        # Evaluate every second so each group has run once within the smoke test's budget.
        "global": {"evaluation_interval": "1s", "scrape_interval": "1s"},
        "rule_files": rule_files,
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def rules_when_evaluated(url: str) -> list[dict[str, Any]]:
    """The rule groups, once Prometheus answers and every rule has been evaluated."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = get_json(f"{url}/api/v1/rules")
        except OSError:
            time.sleep(0.2)
            continue
        groups: list[dict[str, Any]] = last["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if groups and all(rule["health"] != "unknown" for rule in rules):
            return groups
        time.sleep(0.2)
    raise AssertionError(f"rules not evaluated within {STARTUP_TIMEOUT}s; last answer: {last}")


def test_generated_rules_load_and_evaluate(prometheus_url: str) -> None:
    # Given a real Prometheus with the generated rule files and no data
    groups = rules_when_evaluated(prometheus_url)
    # Then every group of the files loaded, and every rule evaluated without error
    expected = {
        group["name"]
        for path in (REPO / "alerts").glob("*.yaml")
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    }
    assert {g["name"] for g in groups} == expected
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", f"{group['name']}/{rule['name']}: {rule}"
