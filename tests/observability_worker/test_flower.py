"""Flower from the same settings: basic auth from a secret setting (never in argv), and the
unauthenticated /metrics and /healthcheck the README warns about."""

from __future__ import annotations

import base64
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import redis
from harness import free_port, start_fleet, wait_until


def status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def test_flower_requires_basic_auth_except_metrics_and_healthcheck(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    env = dict(os.environ, FLEET_FLOWER_PORT=str(port), FLEET_FLOWER_BASIC_AUTH="admin:s3cret")
    flower = start_fleet("flower", env, tmp_path / "flower.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: status(f"{base}/healthcheck") == 200, 60, interval=0.3, message="flower up"
        )
        assert status(f"{base}/") == 401
        assert status(f"{base}/", "admin:wrong") == 401
        assert status(f"{base}/", "admin:s3cret") == 200
        # The open endpoints: why the infra keeps Flower's port on the cluster network
        assert status(f"{base}/metrics") == 200
        cmdline = Path(f"/proc/{flower.pid}/cmdline").read_bytes()
        assert b"s3cret" not in cmdline
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(20)
