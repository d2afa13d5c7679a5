"""The bundle as deployed: the image built from the Dockerfile, and the rendered dev stack
running as pods (podman kube play) on a network the test creates. Tests run in file order
and share one set of pods; the destructive ones (stop, SIGKILL) come last."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest
from conftest import BOOT_TIMEOUT
from pod_cluster import Cluster, wait_for
from podman_runtime import Podman
from rendered_stack import PodPlan

from infra.names import REDIS
from service.catalog.queues import CATALOG

pytestmark = pytest.mark.timeout(1500)

STABLE_SECONDS = 30
PER_QUEUE = 3
RECORD = "service.tasks.diagnostics.record"

SEND = """
import sys
from service import app
task, queue, args = sys.argv[1], sys.argv[2], __import__("json").loads(sys.argv[3])
app.send_task(task, args=args, queue=queue or None)
"""


def worker_pod(cluster: Cluster, queue: str) -> PodPlan:
    name = f"celery-worker-{queue.replace('_', '-')}"
    (pod,) = cluster.stack.owned_by(name)
    return pod


def broker_pod(cluster: Cluster) -> PodPlan:
    (pod,) = cluster.stack.owned_by(REDIS)
    return pod


def redis_cli(cluster: Cluster, *args: str) -> str:
    """redis-cli in the broker pod: REDISCLI_AUTH comes from the rendered Secret."""
    done = cluster.exec(broker_pod(cluster), "redis", ["redis-cli", "--no-raw", *args])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def client_pod(cluster: Cluster) -> PodPlan:
    """Where the test's commands run: the exporter pod (the app image, the broker URL from
    the rendered Secret), which no test stops."""
    (pod,) = cluster.stack.owned_by("celery-exporter")
    return pod


def send(cluster: Cluster, task: str, args: list[Any], queue: str = "") -> None:
    """Publish from inside a pod, through the broker URL of the rendered Secret."""
    argv = ["python", "-c", SEND, task, queue, json.dumps(args)]
    done = cluster.exec(client_pod(cluster), "exporter", argv)
    assert done.returncode == 0, done.stderr[-2000:]


def fleet(cluster: Cluster, *args: str) -> str:
    done = cluster.exec(client_pod(cluster), "exporter", ["fleet", *args])
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def scrape(pod: PodPlan, port: int = 9808) -> str:
    with urllib.request.urlopen(f"http://{pod.ip}:{port}/metrics", timeout=10) as r:
        return str(r.read().decode())


def sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def promql(prometheus: dict[str, Any], query: str) -> list[dict[str, Any]]:
    url = f"{prometheus['url']}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def test_image_runs_as_uid_10001_on_a_read_only_root(
    podman: Podman, images: dict[str, str]
) -> None:
    image = images["app"]
    # fleet --help works on a read-only root, and the image's user is 10001
    done = podman.run("run", "--rm", "--read-only", "--network", "none", image, "--help")
    assert "fleet" in done.stdout and "worker" in done.stdout
    ident = podman.out("run", "--rm", "--read-only", "--network", "none",
                       "--entrypoint", "id", image, "-u")  # fmt: skip
    assert ident == "10001"
    # And that root is really read-only for it
    write = podman.run("run", "--rm", "--read-only", "--network", "none", "--entrypoint",
                       "sh", image, "-c", "touch /app/x", check=False)  # fmt: skip
    assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_every_pod_runs_without_restarts_and_passes_its_probes(cluster: Cluster) -> None:
    pods = cluster.stack.pods
    assert {p.owner for p in pods} >= {
        f"celery-worker-{q.replace('_', '-')}" for q in CATALOG.names
    }

    def no_restarts() -> None:
        for pod in pods:
            for container in pod.containers():
                status, restarts = cluster.state(pod, container["name"])
                assert status == "running" and restarts == 0, (
                    f"{pod.name}/{container['name']} {status}, {restarts} restarts:\n"
                    f"{cluster.logs(pod, container['name'])}"
                )

    def all_probes_pass() -> list[str] | bool:
        no_restarts()  # a crash-looping container fails at once, with its log
        failures = [f for p in pods for f in cluster.probe_failures(p)]
        return failures or True

    # Given every pod booted and every probe passed once
    wait_for(all_probes_pass, BOOT_TIMEOUT, "every probe to pass", interval=5)
    # Then for 30 s: every container keeps running, never restarted, every probe passes
    deadline = time.monotonic() + STABLE_SECONDS
    while True:
        no_restarts()
        failures = [f for p in pods for f in cluster.probe_failures(p)]
        assert not failures, failures
        if time.monotonic() > deadline:
            break
        time.sleep(5)


def test_workload_reaches_every_queue_and_a_failure_reaches_the_dlq(cluster: Cluster) -> None:
    run = uuid.uuid4().hex[:8]
    # When a few record tasks go to every catalog queue, and one task fails for good
    for queue in CATALOG.names:
        for i in range(PER_QUEUE):
            send(cluster, RECORD, [run, f"{queue}-{i}"], queue)
    send(cluster, "service.tasks.diagnostics.fail", [f"deploy-test {run}"])

    # Then every one ran exactly once (drained by the pods that consume those queues)
    def counts() -> dict[str, int] | bool:
        raw = redis_cli(cluster, "--raw", "HGETALL", f"fleet:diag:runs:{run}").split()
        got = {raw[i]: int(raw[i + 1]) for i in range(0, len(raw), 2)}
        return got if len(got) == PER_QUEUE * len(CATALOG.names) else False

    got = wait_for(counts, 120, "every record task to run")
    assert set(got.values()) == {1}
    for queue in CATALOG.names:
        assert redis_cli(cluster, "LLEN", queue) == "(integer) 0"
        pod = worker_pod(cluster, queue)

        def counted(pod: PodPlan = pod) -> bool:
            text = scrape(pod)
            return sample(text, "celery_task_succeeded_total", task_name=RECORD) == PER_QUEUE

        wait_for(counted, 30, f"{pod.name} to count {PER_QUEUE} successes")
        text = scrape(pod)
        seen = sample(text, "celery_task_succeeded_total", queue=queue, task_name=RECORD)
        assert seen == PER_QUEUE, (queue, [ln for ln in text.splitlines() if "succeeded" in ln])

    # And the failure is in the DLQ, as `fleet dlq list` in a pod shows it
    def dead() -> tuple[dict[str, Any], ...]:
        entries = json.loads(fleet(cluster, "dlq", "list", "--json"))
        return tuple(e for e in entries if run in json.dumps(e))

    (entry,) = wait_for(dead, 60, "the failed task in the DLQ")
    assert entry["task_name"] == "service.tasks.diagnostics.fail"
    assert entry["queue"] == "default"


def test_prometheus_sees_the_task_counts_and_loads_the_rules(
    cluster: Cluster, prometheus: dict[str, Any]
) -> None:
    # Given a Prometheus scraping what the PodMonitor/ServiceMonitor name, and a fresh run
    run = uuid.uuid4().hex[:8]

    def direct(queue: str) -> float:
        text = scrape(worker_pod(cluster, queue))
        return sample(text, "celery_task_succeeded_total", queue=queue, task_name=RECORD)

    def in_sync() -> bool:
        return all(_succeeded(prometheus, q) == direct(q) for q in CATALOG.names)

    wait_for(in_sync, 90, "Prometheus to agree with every worker's /metrics", interval=3)
    before = {q: _succeeded(prometheus, q) for q in CATALOG.names}
    for queue in CATALOG.names:
        for i in range(PER_QUEUE):
            send(cluster, RECORD, [run, f"{queue}-{i}"], queue)

    # Then it sees exactly PER_QUEUE more successes per queue, from the worker pods
    def caught_up() -> dict[str, float] | bool:
        now = {q: _succeeded(prometheus, q) for q in CATALOG.names}
        diff = {q: now[q] - before[q] for q in now}
        return diff if all(v == PER_QUEUE for v in diff.values()) else False

    wait_for(caught_up, 120, "Prometheus to see every task", interval=3)
    # Every target is up (workers, exporter, Flower) and the exporter's queue gauge is there
    targets = promql(prometheus, "up")
    assert targets and all(t["value"][1] == "1" for t in targets), targets
    jobs = {t["metric"]["job"] for t in targets}
    assert any(j.startswith("servicemonitor/") for j in jobs), jobs
    assert promql(prometheus, "celery_queue_length")
    # And the rules of the rendered PrometheusRule are loaded
    with urllib.request.urlopen(f"{prometheus['url']}/api/v1/rules", timeout=10) as r:
        loaded = json.loads(r.read())["data"]["groups"]
    assert sorted(g["name"] for g in loaded) == sorted(prometheus["groups"])
    assert all(g["rules"] for g in loaded)


def _succeeded(prometheus: dict[str, Any], queue: str) -> float:
    query = f'sum(celery_task_succeeded_total{{queue="{queue}",task_name="{RECORD}"}})'
    result = promql(prometheus, query)
    return float(result[0]["value"][1]) if result else 0.0


def _wait_running(cluster: Cluster, pod: PodPlan, queue: str) -> None:
    def running() -> bool:
        return sample(scrape(pod), "celery_active_tasks", queue=queue) >= 1

    wait_for(running, 60, f"a task running on {pod.name}", interval=0.5)


def test_stopping_a_worker_pod_with_its_grace_period_completes_the_running_task(
    cluster: Cluster,
) -> None:
    pod = worker_pod(cluster, "default")
    marker = f"grace-{uuid.uuid4().hex[:8]}"
    # Given a task that runs for a while on the pod
    send(cluster, "service.tasks.diagnostics.sleep", [8, marker], "default")
    _wait_running(cluster, pod, "default")
    # When the pod is stopped as a kubelet stops it: SIGTERM to its container, SIGKILL after
    # the rendered grace period, the pod's network kept until the container has exited
    grace = int(pod.spec["terminationGracePeriodSeconds"])
    container = pod.container_name("worker")
    cluster.podman.run("stop", "--time", str(grace), container, timeout=grace + 60)
    # Then the task completed before the worker exited, and it exited cleanly
    assert redis_cli(cluster, "LLEN", f"fleet:diag:done:{marker}") == "(integer) 1"
    info = cluster.inspect(pod, "worker")
    assert info["State"]["ExitCode"] == 0, cluster.logs(pod, "worker")


def test_a_sigkilled_worker_pods_task_runs_again_on_another_pod(cluster: Cluster) -> None:
    queue = "email"
    pod = worker_pod(cluster, queue)
    marker = f"kill-{uuid.uuid4().hex[:8]}"
    # Given a task running on the pod
    send(cluster, "service.tasks.diagnostics.sleep", [5, marker], queue)
    _wait_running(cluster, pod, queue)
    # And a second replica of the same worker Deployment, started now (it took nothing yet)
    replica = _replica(cluster, pod)
    cluster.play(replica)
    wait_for(lambda: not cluster.probe_failures(replica, ("readinessProbe",)),
             BOOT_TIMEOUT, f"{replica.name} ready")  # fmt: skip
    # When the first pod's worker is SIGKILLed (podman kill, as an OOM kill or a lost node
    # would end it), and the pod stays down
    cluster.podman.run("kill", "--signal", "KILL", pod.container_name("worker"))
    killed_at = time.monotonic()
    cluster.podman.run("pod", "stop", "--time", "0", pod.name)
    try:
        # Then the task runs again on the replica within the dead-owner timeout + one beat
        # (30 s + 7.5 s as shipped), plus the task's 5 s and room for a loaded machine
        wait_for(
            lambda: redis_cli(cluster, "LLEN", f"fleet:diag:done:{marker}") == "(integer) 1",
            DEAD_OWNER_BOUND_S + 5 + 30,
            "the killed pod's task to run again on the replica",
            interval=1,
        )
        assert time.monotonic() - killed_at < DEAD_OWNER_BOUND_S + 5 + 30
        # And, acked there, it is nowhere in Redis any more (run once more, not twice more)
        wait_for(
            lambda: int(redis_cli(cluster, "--raw", "EVAL", FIND_MARKER, "0", marker)) == 0,
            30,
            "the ack on the replica",
            interval=1,
        )
    finally:
        cluster.podman.run("pod", "start", pod.name, check=False)


# Shipped FLEET_DEAD_OWNER_TIMEOUT_SECONDS + one heartbeat interval of the replica (a quarter).
DEAD_OWNER_BOUND_S = 30 + 7.5


def _replica(cluster: Cluster, pod: PodPlan) -> PodPlan:
    """Another pod of `pod`'s Deployment, on a free address of the test network."""
    assert cluster.subnet is not None
    used = {p.ip for p in cluster.stack.pods}
    ip = next(str(h) for h in list(cluster.subnet.hosts())[9:] if str(h) not in used)
    return dataclasses.replace(pod, name=f"{pod.name}-replica", ip=ip, spec=copy.deepcopy(pod.spec))


# Counts keys (hashes, lists, zsets, strings) holding the marker anywhere in a value: the
# check does not depend on how the transport names its bookkeeping keys.
FIND_MARKER = """
local found = 0
for _, key in ipairs(redis.call('KEYS', '*')) do
  local t = redis.call('TYPE', key).ok
  local values = {}
  if t == 'hash' then values = redis.call('HVALS', key)
  elseif t == 'list' then values = redis.call('LRANGE', key, 0, -1)
  elseif t == 'zset' then values = redis.call('ZRANGE', key, 0, -1)
  elseif t == 'string' then values = {redis.call('GET', key)} end
  for _, v in ipairs(values) do
    if string.find(v, ARGV[1], 1, true) and not string.find(key, 'fleet:diag:', 1, true) then
      found = found + 1
    end
  end
end
return found
"""
