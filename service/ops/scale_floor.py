"""Raise worker Deployments that sit at 0 replicas to a floor, leave every other count as is:
`python -m service.ops.scale_floor <deployment>=<replicas> ...`

The HPA controller never scales a target that has 0 replicas ("ScalingDisabled"), so after a
switch from KEDA (which scales idle pools to zero) to HPA mode such a pool would keep no
worker for good. The infra runs this as a Job once the HPAs exist (infra/hpa_handover.py).
A pool with workers keeps its count: the HPA takes over from there.

It talks to the Kubernetes API with the pod's ServiceAccount token, through the Deployments'
`scale` subresource only (the Job's Role allows get and patch on it, nothing else)."""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Api:
    base_url: str
    token: str
    namespace: str
    context: ssl.SSLContext | None

    @classmethod
    def in_cluster(cls) -> Api:
        host = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        base = os.environ.get("FLEET_KUBE_API_URL") or f"https://{host}:{port}"
        directory = Path(os.environ.get("FLEET_KUBE_SA_DIR") or SERVICE_ACCOUNT_DIR)
        context = None
        if base.startswith("https://"):
            context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
        return cls(
            base_url=base.rstrip("/"),
            token=(directory / "token").read_text().strip(),
            namespace=(directory / "namespace").read_text().strip(),
            context=context,
        )

    def scale_url(self, deployment: str) -> str:
        return (
            f"{self.base_url}/apis/apps/v1/namespaces/{self.namespace}"
            f"/deployments/{deployment}/scale"
        )

    def request(
        self, method: str, url: str, body: dict[str, object] | None = None
    ) -> dict[str, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if body is not None:
            request.add_header("Content-Type", "application/merge-patch+json")
        with urllib.request.urlopen(request, timeout=30, context=self.context) as response:
            result: dict[str, object] = json.loads(response.read())
            return result


def parse_floors(args: list[str]) -> dict[str, int]:
    floors: dict[str, int] = {}
    for arg in args:
        name, sep, raw = arg.partition("=")
        if not sep or not name or not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"expected <deployment>=<replicas >= 1>, got {arg!r}")
        floors[name] = int(raw)
    if not floors:
        raise ValueError("no deployments given")
    return floors


def raise_floors(api: Api, floors: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Deployment -> (replicas before, replicas after)."""
    done: dict[str, tuple[int, int]] = {}
    for deployment, floor in floors.items():
        url = api.scale_url(deployment)
        spec = api.request("GET", url).get("spec") or {}
        current = int(spec.get("replicas", 0) if isinstance(spec, dict) else 0)
        if current == 0:
            api.request("PATCH", url, {"spec": {"replicas": floor}})
            done[deployment] = (0, floor)
        else:
            done[deployment] = (current, current)
    return done


def main(argv: list[str] | None = None) -> int:
    try:
        floors = parse_floors(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"scale_floor: {exc}", file=sys.stderr)
        return 2
    try:
        result = raise_floors(Api.in_cluster(), floors)
    except (OSError, urllib.error.URLError) as exc:
        print(f"scale_floor: the Kubernetes API refused or failed: {exc}", file=sys.stderr)
        return 1
    for deployment, (before, after) in result.items():
        verb = "raised" if before != after else "kept"
        print(f"{deployment}: {verb} {before} -> {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
