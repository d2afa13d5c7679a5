"""Helpers for tests: real redis-server processes and real `celery worker` subprocesses.

The session's redis-server starts in pytest_configure, before test modules import the
service, so `service.app` and every worker talk to it (never to the machine's 6379).
`REDIS_URL` overrides it. A missing redis-server skips locally and FAILS when `CI` is set."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import redis

IN_CI = bool(os.environ.get("CI"))
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.05, message: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def unavailable(what: str) -> NoReturn:
    """A dependency is missing: skip locally, FAIL in CI (`CI` set), where a skip would hide
    a missing install. The one place that decides; every test and fixture calls this."""
    if IN_CI:
        pytest.fail(f"{what} (CI must provide it: make setup)")
    pytest.skip(what)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed")
    return path


@dataclass
class RedisServer:
    """A redis-server we own: can be killed and restarted on the same port and data dir."""

    port: int
    data_dir: Path
    appendonly: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server missing"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.data_dir),
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), 10, message=f"redis-server on {self.port}")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        """A plain SIGTERM restart, without the preStop write pause the infra adds: the
        transport's atomic pop-and-track must cover a pop whose reply the shutdown drops."""
        self.stop()
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@dataclass
class Worker:
    """A real `fleet worker` (celery) process tree in its own session."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    heartbeat: Path
    metrics_port: int
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def kill_tree(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM), then kill whatever is left of the tree."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        self.kill_tree()


def start_session_redis(prefix: str) -> RedisServer:
    """A private redis-server in a fresh temp dir on a free port (never the machine's)."""
    return RedisServer(free_port(), Path(tempfile.mkdtemp(prefix=prefix))).start()


def discard_redis(server: RedisServer) -> None:
    server.stop()
    shutil.rmtree(server.data_dir, ignore_errors=True)


def need_redis(available: bool, what: str) -> None:
    if not available:
        unavailable(what)


def unacked_count(client: redis.Redis) -> int:
    """Unacked records anywhere: every queue's (service.catalog.naming.unacked_key) and
    kombu's global hash (stock clients, the previous release)."""
    keys = list(client.scan_iter(match="fleet:{*}:unacked", count=1000))
    return sum(int(client.hlen(key)) for key in [*keys, "unacked"])


def pop_script_args(
    queue: str = "default",
    lists: list[str] | None = None,
    consumer: str = "test-consumer",
) -> list[Any]:
    """numkeys, keys and args for service.transport.scripts.POP_AND_TRACK over one queue, as
    the channel builds them."""
    from service.catalog.naming import (
        consumers_key,
        held_key,
        priority_list_keys,
        quarantine_key,
        unacked_key,
        wake_key,
    )

    lists = lists if lists is not None else priority_list_keys(queue)
    keys = [*lists, unacked_key(queue), held_key(queue, consumer), consumers_key(queue)]
    keys += [wake_key(queue), quarantine_key(queue)]
    return [len(keys), *keys, len(lists), 1, consumer, 1_700_000_000.5, *([1] * len(lists))]


def metric_samples(port: int, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Sorted label pairs -> value, for every sample called `name` on a /metrics endpoint."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def start_fleet(command: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m service <command>` (beat, flower...) in its own session (stop it with
    os.killpg), output to `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "service", command],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
