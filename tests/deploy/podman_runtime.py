"""The container runtime of the deploy test: rootful `podman` with the `runc` runtime and a
containers.conf of our own (this kernel's hybrid cgroups make crun refuse to start, and the
default ulimits cannot be set here). Missing tools skip locally and FAIL under `CI`."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import IN_CI, require_binary

# Every tool the deploy test needs, with the Debian package `make setup` installs it from.
TOOLS = {
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "catatonit": "catatonit",  # podman builds its pod infra image around it
    "iptables": "iptables",  # netavark's firewall driver
}

CONTAINERS_CONF = """\
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
"""


def cache_dir() -> Path:
    """Survives between runs (images are also cached in podman's own store)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = base / "celery-fleet-deploy"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_runtime() -> None:
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None and not Path(f"/usr/libexec/podman/{tool}").exists():
            require_binary(tool)  # skips locally, fails in CI
            raise AssertionError(f"{tool} missing (apt-get install {package})")
    if os.geteuid() != 0:
        # `make test-no-root` never gets here (--ignore=tests/deploy); `make deploy-test` comes
        # here as root already, or through `sudo -n` keeping PATH and CI (see the Makefile).
        message = (
            "the deploy test runs rootful podman (pods on a bridge network): run it as root or "
            "with `make deploy-test`, which uses `sudo -n` when it can"
        )
        if IN_CI:
            raise AssertionError(message)
        import pytest

        pytest.skip(message)


@dataclass
class Podman:
    conf: Path

    @classmethod
    def create(cls) -> Podman:
        conf = cache_dir() / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        return cls(conf)

    def env(self) -> dict[str, str]:
        return dict(os.environ, CONTAINERS_CONF=str(self.conf))

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 300,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args[:6])} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def out(self, *args: str, timeout: float = 300) -> str:
        return self.run(*args, timeout=timeout).stdout.strip()

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "exists", ref, check=False).returncode == 0

    def label(self, ref: str, key: str) -> str | None:
        if not self.image_exists(ref):
            return None
        value = self.out("image", "inspect", ref, "--format", f'{{{{index .Labels "{key}"}}}}')
        return None if value in ("", "<no value>") else value
