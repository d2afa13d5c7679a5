"""Runs `fleet dev` as a user would (its own session, like a terminal's foreground job) and
tracks every process it starts, so a test can prove none survives."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import REPO, free_port

PORT_OPTIONS = (
    "redis",
    "worker-metrics",
    "exporter",
    "flower",
    "prometheus",
    "smtp",
    "api",
)


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command, which may contain spaces.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = children_map(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class DevRun:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    ports: dict[str, int]
    seen_pgids: set[int] = field(default_factory=set)

    def sample(self) -> set[int]:
        """Record the process groups of everything `fleet dev` runs now."""
        pids = descendants(self.process.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                self.seen_pgids.add(os.getpgid(pid))
        self.seen_pgids.discard(os.getpgid(0))
        return pids

    def wait_sampling(self, timeout: float) -> int:
        """Wait for exit, sampling the process tree as it changes."""
        try:
            return self.process.wait(0.0)
        except subprocess.TimeoutExpired:
            pass
        for _ in range(int(timeout * 2)):
            self.sample()
            try:
                return self.process.wait(0.5)
            except subprocess.TimeoutExpired:
                continue
        raise AssertionError("fleet dev did not exit in time:\n" + self.err()[-3000:])

    def err(self) -> str:
        return self.stderr.read_text(errors="replace")

    def out(self) -> str:
        return self.stdout.read_text(errors="replace")

    def survivors(self) -> list[int]:
        return sorted(g for g in self.seen_pgids if group_alive(g))

    def kill(self) -> None:
        for pgid in [self.process.pid, *self.seen_pgids]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)


def start_dev(tmp: Path, *args: str, ports: dict[str, int] | None = None) -> DevRun:
    ports = ports or {name: free_port() for name in PORT_OPTIONS}
    argv = [sys.executable, "-m", "service", "dev", *args]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    # No Redis answers there: `fleet dev` starts its own (never the machine's or the suite's).
    # TMPDIR: its logs, Redis data and Prometheus TSDB go to the test's own directory.
    env = dict(os.environ, CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0", TMPDIR=str(tmp))
    env.pop("CELERY_RESULT_BACKEND", None)
    stdout, stderr = tmp / "dev.out", tmp / "dev.err"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True
        )
    return DevRun(process, stdout, stderr, ports)
