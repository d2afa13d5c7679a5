"""The rendered pods on one machine: a podman network the test creates (internal: no route
out), the Secrets as podman secrets, one `podman kube play` per pod with its fixed address,
and the kubelet's part the test plays itself: running every probe as rendered."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podman_runtime import Podman
from rendered_stack import PodPlan, RenderedStack, assign_addresses, kube_yaml

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def free_subnet(podman: Podman) -> ipaddress.IPv4Network:
    """A /24 no host route and no podman network uses."""
    used = []
    routes = subprocess.run(["ip", "-4", "-o", "route"], capture_output=True, text=True).stdout
    for line in routes.splitlines():
        dest = line.split()[0]
        if dest != "default":
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(dest, strict=False))
    for net in json.loads(podman.out("network", "ls", "--format", "json") or "[]"):
        for sub in net.get("subnets") or []:
            used.append(ipaddress.ip_network(sub["subnet"], strict=False))
    for third in range(os.getpid() % 200, 256):
        candidate = ipaddress.IPv4Network(f"10.231.{third}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise AssertionError("no free 10.231.x.0/24 for the test network")


@dataclass
class Cluster:
    podman: Podman
    stack: RenderedStack
    network: str = f"fleet-deploy-{os.getpid()}"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fleet-pods-")))
    subnet: ipaddress.IPv4Network | None = None
    started: list[PodPlan] = field(default_factory=list)

    # ---- lifecycle -------------------------------------------------------------------
    def create(self) -> None:
        self.remove_pods(self.stack.pods)  # leftovers of an aborted run
        self.subnet = free_subnet(self.podman)
        self.podman.run(
            "network", "create", "--internal", "--subnet", str(self.subnet), self.network
        )
        hosts = [str(h) for h in self.subnet.hosts()][9:]  # .10 on; .1 is the host's side
        assign_addresses(self.stack, hosts)
        for name, data in self.stack.secrets.items():
            # podman's kube play reads a secret as a JSON map of base64 values (a Secret's data).
            encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
            path = self.workdir / f"secret-{name}.json"
            path.write_text(json.dumps(encoded))
            path.chmod(0o600)
            self.podman.run("secret", "rm", name, check=False)
            self.podman.run("secret", "create", name, str(path))

    def play(self, pod: PodPlan) -> None:
        path = self.workdir / f"{pod.name}.yaml"
        path.write_text(kube_yaml(self.stack, pod))
        self.started.append(pod)
        self.podman.run(
            "kube", "play", "--network", self.network, "--ip", pod.ip, str(path), timeout=300
        )

    def remove_pods(self, pods: list[PodPlan]) -> None:
        """One `podman pod rm` for all (missing ones ignored), then one `volume rm`."""
        if not pods:
            return
        names = [pod.name for pod in pods]
        self.podman.run(
            "pod", "rm", "--force", "--ignore", "--time", "0", *names, check=False, timeout=600
        )
        volumes = [volume for pod in pods for volume in pod.volume_names()]
        if volumes:
            self.podman.run("volume", "rm", "--force", *volumes, check=False)

    def destroy(self) -> None:
        self.remove_pods(self.started)
        for name in self.stack.secrets:
            self.podman.run("secret", "rm", name, check=False)
        self.podman.run("network", "rm", "--force", self.network, check=False)

    # ---- looking at pods -------------------------------------------------------------
    def inspect(self, pod: PodPlan, container: str) -> dict[str, Any]:
        out = self.podman.out("container", "inspect", pod.container_name(container))
        data: list[dict[str, Any]] = json.loads(out)
        return data[0]

    def state(self, pod: PodPlan, container: str) -> tuple[str, int]:
        info = self.inspect(pod, container)
        return str(info["State"]["Status"]), int(info.get("RestartCount", 0))

    def logs(self, pod: PodPlan, container: str, tail: int = 60) -> str:
        done = self.podman.run(
            "logs", "--tail", str(tail), pod.container_name(container), check=False
        )
        return done.stdout + done.stderr

    def exec(
        self, pod: PodPlan, container: str, argv: list[str], timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return self.podman.run(
            "exec", pod.container_name(container), *argv, check=False, timeout=timeout
        )

    # ---- the kubelet's probes, as rendered -------------------------------------------
    def probe_failures(self, pod: PodPlan, kinds: tuple[str, ...] = PROBES) -> list[str]:
        failures = []
        for container in pod.containers():
            for kind in kinds:
                probe = container.get(kind)
                if probe is None:
                    continue
                problem = self.run_probe(pod, container, probe)
                if problem:
                    failures.append(f"{pod.name}/{container['name']} {kind}: {problem}")
        return failures

    def run_probe(self, pod: PodPlan, container: dict[str, Any], probe: dict[str, Any]) -> str:
        timeout = float(probe.get("timeoutSeconds", 1))
        if "exec" in probe:
            argv = list(probe["exec"]["command"])
            try:
                done = self.exec(pod, container["name"], argv, timeout=timeout + 20)
            except subprocess.TimeoutExpired:
                return f"exec {argv} timed out"
            return (
                ""
                if done.returncode == 0
                else f"exec {argv} -> {done.returncode} {done.stderr[-300:]}"
            )
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = resolve_port(container, get["port"])
            url = f"http://{pod.ip}:{port}{get.get('path', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    code = response.status
            except Exception as exc:  # the kubelet counts any error as a failure
                return f"GET {url}: {exc}"
            return "" if 200 <= code < 400 else f"GET {url} -> {code}"
        if "tcpSocket" in probe:
            port = resolve_port(container, probe["tcpSocket"]["port"])
            try:
                socket.create_connection((pod.ip, port), timeout=timeout).close()
            except OSError as exc:
                return f"tcp {pod.ip}:{port}: {exc}"
            return ""
        return f"unknown probe {sorted(probe)}"


def resolve_port(container: dict[str, Any], port: int | str) -> int:
    """A probe may name a port; the container's ports say which number it is."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for item in container.get("ports", []):
        if item.get("name") == port:
            return int(item["containerPort"])
    raise AssertionError(f"container {container['name']} has no port named {port!r}")


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last is True or (last and not isinstance(last, list)):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last}")
