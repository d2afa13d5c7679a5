"""`python -m service.ops.scale_floor` (the HPA handover Job) against a stand-in for the
Kubernetes API's Deployment `scale` subresource: a pool at 0 is raised to its floor, a pool
with workers keeps its count, and every request carries the ServiceAccount token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from service.ops.scale_floor import parse_floors

NAMESPACE = "celery-fleet"
TOKEN = "sa-token-123"


class FakeApi:
    def __init__(self, replicas: dict[str, int]) -> None:
        self.replicas = dict(replicas)
        self.requests: list[tuple[str, str, str, Any]] = []


def handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    prefix = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _deployment(self) -> str | None:
            if not self.path.startswith(prefix) or not self.path.endswith("/scale"):
                return None
            name = self.path[len(prefix) : -len("/scale")]
            return name if name in api.replicas else None

        def _answer(self, name: str) -> None:
            body = json.dumps({"kind": "Scale", "spec": {"replicas": api.replicas[name]}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def _record(self, body: Any = None) -> str | None:
            auth = self.headers.get("Authorization", "")
            self.requests_entry = (self.command, self.path, auth, body)
            api.requests.append(self.requests_entry)
            if auth != f"Bearer {TOKEN}":
                self.send_response(401)
                self.end_headers()
                return None
            name = self._deployment()
            if name is None:
                self.send_response(404)
                self.end_headers()
            return name

        def do_GET(self) -> None:
            name = self._record()
            if name is not None:
                self._answer(name)

        def do_PATCH(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            assert self.headers["Content-Type"] == "application/merge-patch+json"
            name = self._record(body)
            if name is not None:
                api.replicas[name] = int(body["spec"]["replicas"])
                self._answer(name)

    return Handler


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeApi, dict[str, str]]]:
    api = FakeApi({"celery-worker-email": 0, "celery-worker-default": 3, "celery-worker-x": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(api))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(TOKEN + "\n")
    (sa / "namespace").write_text(NAMESPACE)
    env = {
        **os.environ,
        "FLEET_KUBE_API_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "FLEET_KUBE_SA_DIR": str(sa),
    }
    yield api, env
    server.shutdown()
    server.server_close()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.ops.scale_floor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_pools_at_zero_rise_to_their_floor_the_others_keep_their_count(
    cluster: tuple[FakeApi, dict[str, str]],
) -> None:
    api, env = cluster
    # Given email at 0 (left there by KEDA) and default at 3
    done = run(env, "celery-worker-email=2", "celery-worker-default=1")
    assert done.returncode == 0, done.stderr
    # Then email has its floor, default keeps 3 (never lowered to a floor)
    assert api.replicas["celery-worker-email"] == 2
    assert api.replicas["celery-worker-default"] == 3
    assert "celery-worker-email: raised 0 -> 2" in done.stdout
    assert "celery-worker-default: kept 3 -> 3" in done.stdout
    # And only the scale subresource was read and written, with the token
    assert {(m, p.rsplit("/", 2)[-2]) for m, p, _, _ in api.requests} == {
        ("GET", "celery-worker-email"),
        ("PATCH", "celery-worker-email"),
        ("GET", "celery-worker-default"),
    }
    assert all(a == f"Bearer {TOKEN}" for _, _, a, _ in api.requests)
    # A second run changes nothing
    again = run(env, "celery-worker-email=2", "celery-worker-default=1")
    assert again.returncode == 0 and "raised" not in again.stdout


def test_an_api_error_fails_the_job(cluster: tuple[FakeApi, dict[str, str]]) -> None:
    _, env = cluster
    done = run(env, "celery-worker-missing=1")
    assert done.returncode == 1 and "404" in done.stderr


@pytest.mark.parametrize("bad", [[], ["x"], ["x=0"], ["x=-1"], ["=2"], ["x=two"]])
def test_bad_arguments_are_refused(bad: list[str]) -> None:
    with pytest.raises(ValueError):
        parse_floors(bad)
