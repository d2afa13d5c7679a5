"""The image matches what the infra expects: runs `fleet`, as the uid the pods enforce, with
runtime versions that agree with the full lock."""

from __future__ import annotations

import re
from pathlib import Path

from infra.podspec import APP_UID

REPO = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", path.read_text(), re.M)
    return {name.lower(): version for name, version in found}


def test_dockerfile_runs_fleet_as_the_pods_uid() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(rf"^USER {APP_UID}$", dockerfile, re.M)
    assert 'ENTRYPOINT ["fleet"]' in dockerfile
    assert "requirements-runtime.lock" in dockerfile


def test_runtime_lock_agrees_with_the_full_lock() -> None:
    runtime, full = pins(REPO / "requirements-runtime.lock"), pins(REPO / "requirements.lock")
    assert runtime, "empty runtime lock"
    assert {"celery", "kombu", "redis", "prometheus-client"} <= set(runtime)
    assert not any(name.startswith("pulumi") for name in runtime)
    mismatched = {n: (v, full.get(n)) for n, v in runtime.items() if full.get(n) != v}
    assert not mismatched, f"run `make lock`: {mismatched}"
