"""Session fixtures of the deploy test: images, the rendered dev stack as running pods, and
a Prometheus scraping them. Built once per session; torn down at the end."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import free_port, require_binary, wait_until
from pod_cluster import Cluster, wait_for
from podman_runtime import Podman, require_runtime
from rendered_stack import RenderedStack, load, render
from scrape_config import prometheus_yaml, rules_yaml
from standin_images import build_project, build_redis

# Pods need a while to boot on a shared 2-core machine; the startup probes allow 180 s.
BOOT_TIMEOUT = 240


@pytest.fixture(scope="session")
def podman() -> Podman:
    require_runtime()
    return Podman.create()


@pytest.fixture(scope="session")
def rendered() -> RenderedStack:
    return load(render("dev"))


def image_of(stack: RenderedStack, owner_kind: str) -> str:
    images = {c["image"] for p in stack.pods if p.owner_kind == owner_kind for c in p.containers()}
    assert len(images) == 1, images
    return str(images.pop())


@pytest.fixture(scope="session")
def images(podman: Podman, rendered: RenderedStack) -> dict[str, str]:
    """Tagged with the names the rendered pods use (pull policy IfNotPresent: no pull)."""
    return {
        "app": build_project(podman, image_of(rendered, "Deployment")),
        "redis": build_redis(podman, image_of(rendered, "StatefulSet")),
    }


@pytest.fixture(scope="session")
def cluster(podman: Podman, rendered: RenderedStack, images: dict[str, str]) -> Iterator[Cluster]:
    cluster = Cluster(podman, rendered)
    try:
        cluster.create()
        brokers = [p for p in rendered.pods if p.owner_kind == "StatefulSet"]
        for pod in brokers:
            cluster.play(pod)
        for pod in brokers:
            wait_for(lambda p=pod: not cluster.probe_failures(p, ("readinessProbe",)),
                     BOOT_TIMEOUT, f"{pod.name} ready")  # fmt: skip
        for pod in rendered.pods:
            if pod not in brokers:
                cluster.play(pod)
        yield cluster
    finally:
        for pod in cluster.started:
            for container in pod.containers():
                sys.stdout.write(f"\n----- {pod.name}/{container['name']} -----\n")
                sys.stdout.write(cluster.logs(pod, container["name"], tail=30))
        cluster.destroy()
        shutil.rmtree(cluster.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def prometheus(cluster: Cluster) -> Iterator[dict[str, Any]]:
    """The host's Prometheus, scraping the pods over the test network's bridge."""
    binary = require_binary("prometheus")
    home = Path(tempfile.mkdtemp(prefix="fleet-prom-"))
    rules, groups = rules_yaml(cluster.stack)
    (home / "rules.yaml").write_text(rules)
    (home / "prometheus.yml").write_text(prometheus_yaml(cluster.stack, str(home / "rules.yaml")))
    port = free_port()
    log = open(home / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return process.poll() is not None

        wait_until(ready, 60, 0.5, "prometheus ready")
        assert process.poll() is None, (home / "prometheus.log").read_text()[-3000:]
        yield {"url": url, "groups": groups, "home": home}
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        shutil.rmtree(home, ignore_errors=True)
