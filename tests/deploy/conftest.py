"""Fixtures of the deploy test: images, the rendered dev stack as running pods, and a
Prometheus scraping them. One stack per test module, torn down when the module ends (two
stacks' pods would share names and the machine): a module may render the dev stack with
config overrides (`STACK_CONFIG`, `--set key=json` pairs for the Pulumi program). Images are
built once and reused (see standin_images)."""

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
from standin_images import build_postgres, build_project, build_redis

from infra.names import REDIS
from infra.results_names import POSTGRES

# Pods need a while to boot on a shared 2-core machine; the startup probes allow 180 s.
BOOT_TIMEOUT = 240


@pytest.fixture(scope="session")
def podman() -> Podman:
    require_runtime()
    return Podman.create()


@pytest.fixture(scope="module")
def rendered(request: pytest.FixtureRequest) -> RenderedStack:
    """The dev stack, with the test module's `STACK_CONFIG` overrides if it has any."""
    extra: tuple[str, ...] = getattr(request.module, "STACK_CONFIG", ())
    return load(render("dev", *extra))


def image_of(stack: RenderedStack, owner_kind: str, owner: str | None = None) -> str:
    """The one image every container of `owner_kind` pods (of `owner`, if given) runs."""
    images = {
        c["image"]
        for p in stack.pods
        if p.owner_kind == owner_kind and owner in (None, p.owner)
        for c in p.containers()
    }
    assert len(images) == 1, (owner_kind, owner, images)
    return str(images.pop())


@pytest.fixture(scope="module")
def images(podman: Podman, rendered: RenderedStack) -> dict[str, str]:
    """Tagged with the names the rendered pods use (pull policy IfNotPresent: no pull)."""
    built = {
        "app": build_project(podman, image_of(rendered, "Deployment")),
        "redis": build_redis(podman, image_of(rendered, "StatefulSet", REDIS)),
    }
    if rendered.owned_by(POSTGRES):  # results.mode postgres, provider in-cluster
        built["postgres"] = build_postgres(podman, image_of(rendered, "StatefulSet", POSTGRES))
    return built


@pytest.fixture(scope="module")
def cluster(podman: Podman, rendered: RenderedStack, images: dict[str, str]) -> Iterator[Cluster]:
    cluster = Cluster(podman, rendered)
    try:
        cluster.create()
        # The stores first (Redis; PostgreSQL with results.mode postgres): the rest needs them.
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


@pytest.fixture(scope="module")
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
