"""`fleet dev` brings the whole stack up on free ports, runs a demo workload that the worker
and the exporter report, and stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from harness import REPO, free_port, require_binary, wait_until
from prometheus_client.parser import text_string_to_metric_families


def metric_total(url: str, name: str) -> float:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


def test_fleet_dev_runs_the_stack_and_cleans_up(tmp_path: Path) -> None:
    require_binary("redis-server")
    # Given no Redis at the configured URL, and free ports for everything
    ports = {
        name: free_port()
        for name in ("redis", "worker-metrics", "exporter", "flower", "prometheus")
    }
    env = dict(os.environ, CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    env.pop("CELERY_RESULT_BACKEND", None)
    args = [sys.executable, "-m", "service", "dev", "--duration", "40"]
    for name, port in ports.items():
        args += [f"--{name}-port", str(port)]
    log = tmp_path / "dev.log"
    with open(log, "wb") as out:
        dev = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        # Then the demo workload succeeds on the worker and the exporter reads the queues
        worker = f"http://127.0.0.1:{ports['worker-metrics']}/metrics"
        exporter = f"http://127.0.0.1:{ports['exporter']}/metrics"
        wait_until(
            lambda: metric_total(worker, "celery_task_succeeded_total") >= 5,
            60,
            interval=0.5,
            message="demo tasks succeed",
        )
        wait_until(
            lambda: metric_total(exporter, "celery_exporter_up") == 1, 30, message="exporter up"
        )
        assert "flower" in log.read_text() and "logs" in log.read_text()
        # When it is told to stop
        os.killpg(dev.pid, signal.SIGTERM)
        assert dev.wait(90) == 0, log.read_text()[-3000:]
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
    # Then nothing it started is still listening
    for port in ports.values():
        assert metric_total(f"http://127.0.0.1:{port}/metrics", "x") == -1.0
