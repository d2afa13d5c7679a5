"""`fleet worker` on a metrics dir that is a mount point, as the pod's emptyDir is: the
directory itself cannot be removed (EBUSY), only emptied. Before the fix the worker died
at start on `shutil.rmtree` and every worker pod crash-looped."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import IN_CI

from service.worker.fsutil import empty_dir

# A private user + mount namespace: a real tmpfs mount point without needing root.
MOUNT_THEN_EXEC = 'mount -t tmpfs tmpfs "$0" && mkdir "$0/old" && touch "$0/old.db" && exec "$@"'


def unshare_mount(target: Path) -> list[str]:
    """argv prefix: run the rest of argv with a fresh tmpfs mounted on `target`."""
    if shutil.which("unshare") is None or not _namespaces_work():
        if IN_CI:
            pytest.fail("unshare with user+mount namespaces is needed (util-linux)")
        pytest.skip("no user+mount namespaces here")
    return [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        MOUNT_THEN_EXEC,
        str(target),
    ]


def _namespaces_work() -> bool:
    probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def test_empty_dir_keeps_a_directory_it_cannot_remove(tmp_path: Path) -> None:
    # Given a mount point holding a stale file and a stale dir
    target = tmp_path / "metrics"
    target.mkdir()
    script = (
        "import shutil, sys; from pathlib import Path; "
        "from service.worker.fsutil import empty_dir; "
        "p = Path(sys.argv[1]);\n"
        "try:\n    shutil.rmtree(p)\nexcept OSError as exc:\n    print('rmtree', exc.errno)\n"
        "empty_dir(p); print(sorted(x.name for x in p.iterdir()), p.is_dir())"
    )
    done = subprocess.run(
        [*unshare_mount(target), sys.executable, "-c", script, str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Then removing it fails (as in a pod) but emptying it works
    assert done.returncode == 0, done.stderr
    assert "rmtree 16" in done.stdout  # EBUSY: what crashed every worker pod
    assert done.stdout.strip().endswith("[] True")


def test_empty_dir_creates_a_missing_dir(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    empty_dir(target)
    assert target.is_dir() and not any(target.iterdir())


def test_worker_starts_on_a_mounted_metrics_dir(tmp_path: Path, worker_factory: Any) -> None:
    # Given FLEET_METRICS_DIR is a mount point with files of a previous run
    target = tmp_path / "metrics"
    target.mkdir()
    # When the worker starts there (the factory waits for its first heartbeat)
    worker = worker_factory(
        "default", env={"FLEET_METRICS_DIR": str(target)}, prefix=unshare_mount(target)
    )
    # Then it runs, and the mount (seen through its own mount namespace) holds no stale file
    assert worker.alive()
    inside = Path(f"/proc/{worker.process.pid}/root") / str(target).lstrip("/")
    names = sorted(p.name for p in inside.iterdir())
    assert "old.db" not in names and "old" not in names, names
