"""Filesystem chores of process start-up."""

from __future__ import annotations

import shutil
from pathlib import Path


def empty_dir(path: Path) -> None:
    """Make `path` an existing, empty directory without removing `path` itself.

    In a pod the directory is a volume's mount point (an emptyDir): removing it fails with
    EBUSY, or EACCES when its parent is root-owned, so only its contents are deleted."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
