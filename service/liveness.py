"""The worker's liveness probe, standard library only: `python -m service.liveness`.

The kubelet runs it every 30 s in every worker pod (every 5 s while the pod starts), so it
must cost next to nothing: it imports neither the application, Celery, pydantic nor the
settings, and reads only two environment variables and one file. Exit 0 when the heartbeat
the worker writes (service.worker.heartbeat) is fresh, 1 when it is stale or missing.

`fleet probe` is the same check behind the CLI (it pays for the CLI's imports)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# The defaults of FleetSettings.heartbeat_file / heartbeat_max_age (settings imports them).
DEFAULT_HEARTBEAT_FILE = "/tmp/fleet-heartbeat/worker.beat"
DEFAULT_MAX_AGE_SECONDS = 60.0


def age_seconds(path: Path, now: float | None = None) -> float | None:
    """Seconds since the last beat, or None when there is no heartbeat file. The file holds
    the time of the beat; its mtime stands in where the content is unreadable."""
    try:
        stamp = float(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        try:
            stamp = path.stat().st_mtime
        except FileNotFoundError:
            return None
    return (time.time() if now is None else now) - stamp


def check(path: Path, max_age: float, now: float | None = None) -> tuple[bool, str]:
    """(alive, the line to print)."""
    age = age_seconds(path, now)
    if age is None:
        return False, f"stale: no heartbeat file at {path}"
    if age > max_age:
        return False, f"stale: last heartbeat {age:.1f}s ago (limit {max_age:.0f}s)"
    return True, f"ok: last heartbeat {age:.1f}s ago"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(os.environ.get("FLEET_HEARTBEAT_FILE") or DEFAULT_HEARTBEAT_FILE)
    raw = args[0] if args else os.environ.get("FLEET_HEARTBEAT_MAX_AGE") or DEFAULT_MAX_AGE_SECONDS
    try:
        max_age = float(raw)
    except ValueError:
        print(f"invalid max age {raw!r}: a number of seconds", file=sys.stderr)
        return 2
    alive, line = check(path, max_age)
    print(line, file=sys.stdout if alive else sys.stderr)
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
