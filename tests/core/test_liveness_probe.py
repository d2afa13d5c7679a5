"""The liveness probe the worker pods run: a standard-library file-age check that imports
no part of the application, and agrees with `fleet probe`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.liveness import DEFAULT_HEARTBEAT_FILE, DEFAULT_MAX_AGE_SECONDS, check
from service.worker.heartbeat import touch

PROBE = [sys.executable, "-m", "service.liveness"]

# What the probe may load besides the standard library: its own module and the packages
# around it (whose __init__ modules hold only docstrings and a lazy attribute hook).
OWN = {"service", "service.liveness"}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROBE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=30
    )


def test_fresh_stale_and_missing_heartbeats(tmp_path: Path) -> None:
    beat = tmp_path / "worker.beat"
    env = {"FLEET_HEARTBEAT_FILE": str(beat), "FLEET_HEARTBEAT_MAX_AGE": "5"}
    # Given no heartbeat file, then the probe fails and names the file
    missing = run(env)
    assert missing.returncode == 1 and f"no heartbeat file at {beat}" in missing.stderr
    # Given a fresh beat, then it passes
    touch(beat)
    fresh = run(env)
    assert fresh.returncode == 0 and fresh.stdout.startswith("ok: last heartbeat")
    # Given a beat older than the limit, then it fails and says how old
    beat.write_text(f"{time.time() - 30:.3f}\n")
    stale = run(env)
    assert stale.returncode == 1 and "stale: last heartbeat 30" in stale.stderr
    # An explicit argument overrides the environment's limit
    assert run(env, "60").returncode == 0
    assert run(env, "soon").returncode == 2


def test_an_unreadable_stamp_falls_back_to_the_mtime(tmp_path: Path) -> None:
    beat = tmp_path / "worker.beat"
    beat.write_text("garbage")
    assert check(beat, 5)[0]
    old = time.time() - 100
    os.utime(beat, (old, old))
    alive, line = check(beat, 5)
    assert not alive and "stale" in line


def test_the_probe_imports_nothing_but_the_standard_library(tmp_path: Path) -> None:
    # Given a fresh heartbeat, When the probe module runs in a fresh interpreter
    beat = tmp_path / "worker.beat"
    touch(beat)
    code = (
        "import sys, runpy\n"
        "before = set(sys.modules)\n"
        "try:\n"
        "    runpy.run_module('service.liveness', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "FLEET_HEARTBEAT_FILE": str(beat)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    loaded = {line for line in done.stdout.splitlines()[1:] if line}
    # Then everything it loaded is the standard library or the probe itself
    foreign = {m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names and m not in OWN}
    assert foreign == set(), sorted(foreign)
    assert not {"celery", "kombu", "pydantic", "typer", "service.config"} & loaded


def test_the_probe_and_the_settings_share_their_defaults() -> None:
    from service.config.settings import FleetSettings

    fields = FleetSettings.model_fields
    assert str(fields["heartbeat_file"].default) == DEFAULT_HEARTBEAT_FILE
    assert fields["heartbeat_max_age"].default == DEFAULT_MAX_AGE_SECONDS


@pytest.mark.parametrize("fresh", [True, False])
def test_fleet_probe_gives_the_same_verdict(tmp_path: Path, fresh: bool) -> None:
    beat = tmp_path / "worker.beat"
    touch(beat)
    if not fresh:
        beat.write_text(f"{time.time() - 120:.3f}\n")
    env = {"FLEET_HEARTBEAT_FILE": str(beat)}
    cli = subprocess.run(
        [sys.executable, "-m", "service", "probe"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == run(env).returncode == (0 if fresh else 1)
