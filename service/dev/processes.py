"""The dev stack's child processes. Each runs in its own session (so its process group holds
it and everything it forks, e.g. Celery's pool children) with its output in a log file.

Stopping sends SIGTERM to the group leader only (a Celery worker then finishes its running
tasks and stops its own children), waits, then clears whatever is left of the group, with
SIGKILL if needed, so no process the stack started survives."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STOP_TIMEOUT = 30.0


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_code(self) -> int | None:
        return self.process.poll()

    def group_alive(self) -> bool:
        """Any process left in the component's process group (the leader reaped or not)."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)


def log_tail(path: Path, lines: int = 20, max_bytes: int = 16_384) -> str:
    """The last lines of a log, read from the end (a log can be large)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@dataclass
class ProcessSet:
    home: Path
    cwd: Path
    components: dict[str, Component] = field(default_factory=dict)

    def spawn(self, name: str, args: Sequence[str], env: dict[str, str]) -> Component:
        path = self.home / f"{name}.log"
        with open(path, "ab") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                list(args),
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        component = Component(name, process, path)
        self.components[name] = component
        return component

    def exited(self) -> list[Component]:
        return [c for c in self.components.values() if c.exit_code() is not None]

    def stop(self, order: Sequence[Sequence[str]], force: Callable[[], bool]) -> None:
        """Stop the named components batch by batch (e.g. apps before Redis); anything not
        named is stopped in a last batch. `force()` true (a second Ctrl-C) kills at once."""
        named = {n for batch in order for n in batch}
        batches = [list(batch) for batch in order]
        batches.append([n for n in self.components if n not in named])
        for batch in batches:
            members = [self.components[n] for n in batch if n in self.components]
            _stop_batch(members, force)


def _stop_batch(members: list[Component], force: Callable[[], bool]) -> None:
    for component in members:
        if component.exit_code() is None:
            with contextlib.suppress(ProcessLookupError):
                component.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and not force():
        if all(c.exit_code() is not None for c in members):
            break
        time.sleep(0.1)
    # Leaders gone (or out of time): whatever remains in their groups is cleared.
    for component in members:
        if component.exit_code() is None or force():
            component.signal_group(signal.SIGKILL)
        else:
            component.signal_group(signal.SIGTERM)
    grace = time.monotonic() + 3
    for component in members:
        _reap(component)
        while component.group_alive() and time.monotonic() < grace:
            time.sleep(0.05)
        if component.group_alive():
            component.signal_group(signal.SIGKILL)
    for component in members:
        _reap(component)
        settle = time.monotonic() + 5
        while component.group_alive() and time.monotonic() < settle:
            time.sleep(0.05)


def _reap(component: Component) -> None:
    try:
        component.process.wait(5)
    except subprocess.TimeoutExpired:
        component.signal_group(signal.SIGKILL)
        component.process.wait(5)
