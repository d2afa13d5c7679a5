"""`results.mode: postgres` in dev, tried as a new user would: the dev stack rendered with
that one override runs as pods, the in-cluster PostgreSQL StatefulSet among them (its image a
stand-in built from Debian's postgresql, see standin_images). A report whose caller opts into
its result runs; then EVERY pod is stopped hard and started again (workers, beat, exporter,
Flower, Redis, PostgreSQL), and a new caller reads the result from PostgreSQL.

Its own stack (module-scoped fixtures): the pods of test_deployed_stack are gone by then."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from conftest import BOOT_TIMEOUT
from pod_cluster import Cluster, wait_for
from rendered_stack import PodPlan

from infra.names import REDIS
from infra.results_names import POSTGRES, RESULTS_SECRET, RESULTS_URL_KEY

pytestmark = pytest.mark.timeout(1200)

# Read by conftest's `rendered`: the dev stack exactly as Pulumi.dev.yaml has it, plus this.
STACK_CONFIG = ("--set", 'results={"mode": "postgres"}')

REPORT = "service.tasks.reports.generate_custom_report"
SECRET = f"audit-{uuid.uuid4().hex[:12]}"

# Run with `python -c` in the exporter pod (the app image, CELERY_BROKER_URL and
# CELERY_RESULT_BACKEND from the rendered Secrets), as a caller in the cluster would.
CALL = """
import json, sys
from service import app
params = json.loads(sys.argv[1])
print(app.send_task(sys.argv[2], args=[params], ignore_result=False).id)
"""
READ = """
import json, sys
from celery.backends.database import DatabaseBackend
from service import app
r = app.AsyncResult(sys.argv[1])
value = r.get(timeout=float(sys.argv[2]))
print(json.dumps({"state": r.state, "value": value, "name": r.name, "queue": r.queue,
                  "args": r.args, "database": isinstance(app.backend, DatabaseBackend)}))
"""


def client_pod(cluster: Cluster) -> PodPlan:
    (pod,) = cluster.stack.owned_by("celery-exporter")
    return pod


def python(cluster: Cluster, script: str, *argv: str, timeout: float = 60) -> str:
    done = cluster.exec(
        client_pod(cluster), "exporter", ["python", "-c", script, *argv], timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def postgres_pod(cluster: Cluster) -> PodPlan:
    (pod,) = cluster.stack.owned_by(POSTGRES)
    return pod


def psql(cluster: Cluster, sql: str) -> str:
    """psql in the PostgreSQL pod over its local socket, as the rendered POSTGRES_USER."""
    pod = postgres_pod(cluster)
    env = {e["name"]: e.get("value") for e in pod.containers()[0]["env"]}
    argv = ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", str(env["POSTGRES_USER"])]
    argv += ["-d", str(env["POSTGRES_DB"]), "-c", sql]
    done = cluster.exec(pod, "postgres", argv)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def redis_cli(cluster: Cluster, *args: str) -> str:
    (pod,) = cluster.stack.owned_by(REDIS)
    done = cluster.exec(pod, "redis", ["redis-cli", "--raw", *args])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def stored_row(cluster: Cluster, task_id: str) -> dict[str, Any]:
    """The task's celery_taskmeta row, its bytea columns as the JSON text they hold."""
    assert all(c in "0123456789abcdef-" for c in task_id)
    row = psql(
        cluster,
        "SELECT row_to_json(t) FROM (SELECT status, name, queue, worker, date_done, "
        "convert_from(result, 'UTF8') AS result, convert_from(args, 'UTF8') AS args, "
        "convert_from(kwargs, 'UTF8') AS kwargs, traceback "
        f"FROM celery_taskmeta WHERE task_id = '{task_id}') t",
    )
    assert row, f"no celery_taskmeta row for {task_id}"
    data: dict[str, Any] = json.loads(row)
    return data


def all_ready(cluster: Cluster) -> None:
    """Every container running and every probe, as rendered, passing."""

    def passing() -> list[str] | bool:
        down = [
            f"{p.name}/{c['name']}"
            for p in cluster.stack.pods
            for c in p.containers()
            if cluster.state(p, c["name"])[0] != "running"
        ]
        failures = down + [f for p in cluster.stack.pods for f in cluster.probe_failures(p)]
        return failures or True

    wait_for(passing, BOOT_TIMEOUT, "every pod running with every probe passing", interval=5)


def restart_every_pod(cluster: Cluster) -> float:
    """Every pod stopped at once without a grace period (a node lost, as the SIGKILL test in
    test_deployed_stack stops its pod), then started again: the stores first, as they were
    created. Nothing is re-created: the PVC volumes (Redis's AOF, PostgreSQL's data) stay."""
    started = time.monotonic()
    names = [p.name for p in cluster.stack.pods]
    before = {(p.name, c["name"]): started_at(cluster, p, c["name"])
              for p in cluster.stack.pods for c in p.containers()}  # fmt: skip
    cluster.podman.run("pod", "stop", "--time", "0", *names, timeout=300)
    for pod in cluster.stack.pods:
        for container in pod.containers():
            assert cluster.state(pod, container["name"])[0] != "running", pod.name
    stores = [p for p in cluster.stack.pods if p.owner_kind == "StatefulSet"]
    cluster.podman.run("pod", "start", *(p.name for p in stores), timeout=300)
    for pod in stores:
        wait_for(lambda p=pod: not cluster.probe_failures(p, ("readinessProbe",)),
                 BOOT_TIMEOUT, f"{pod.name} ready again")  # fmt: skip
    rest = [p.name for p in cluster.stack.pods if p not in stores]
    cluster.podman.run("pod", "start", *rest, timeout=300)
    for (pod_name, container), at in before.items():
        again = started_at(cluster, cluster.stack.pod(pod_name), container)
        assert again != at, f"{pod_name}/{container} was not restarted"
    return time.monotonic() - started


def started_at(cluster: Cluster, pod: PodPlan, container: str) -> str:
    return str(cluster.inspect(pod, container)["State"]["StartedAt"])


def test_a_report_result_is_read_from_postgres_after_every_pod_restarted(
    cluster: Cluster,
) -> None:
    # Given the dev stack with results.mode postgres: every pod up, the fleet's result URL the
    # in-cluster server's, and no result table yet (nothing creates one at start)
    url = cluster.stack.secrets[RESULTS_SECRET][RESULTS_URL_KEY]
    assert url.startswith("db+postgresql+psycopg://") and f"@{POSTGRES}." in url
    all_ready(cluster)
    assert psql(cluster, "SELECT to_regclass('celery_taskmeta') IS NULL") == "t"

    # When a caller sends a report and opts into its result; its params hold a password
    name = f"q3-audit-{uuid.uuid4().hex[:6]}"
    task_id = python(cluster, CALL, json.dumps({"name": name, "password": SECRET}), REPORT)
    first = json.loads(python(cluster, READ, task_id, "120", timeout=180))
    # Then the reports worker ran it and stored its result in PostgreSQL
    path = f"/tmp/fleet-reports/custom-{name}.csv"
    assert first["database"] is True
    assert first["state"] == "SUCCESS" and first["value"] == path
    assert (first["name"], first["queue"]) == (REPORT, "reports")
    # And the tables were created by that first store, as the role of the fleet's URL: the
    # one the init script made on the first start, LOGIN only and owner of its database
    # alone, not the server's superuser (POSTGRES_USER)
    owners = psql(
        cluster,
        "SELECT string_agg(tableowner, ',' ORDER BY tablename) FROM pg_tables "
        "WHERE tablename IN ('celery_taskmeta', 'celery_tasksetmeta')",
    )
    role = url.split("://", 1)[1].split(":", 1)[0]
    assert owners == f"{role},{role}"
    rights = psql(
        cluster,
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, "
        "(SELECT string_agg(datname, ',') FROM pg_database d WHERE d.datdba = r.oid) "
        f"FROM pg_roles r WHERE rolname = '{role}'",
    )
    assert rights == f"f|f|f|f|{url.rsplit('/', 1)[1]}", rights
    # And the stored row masks the password in the call's arguments, everywhere
    row = stored_row(cluster, task_id)
    assert row["status"] == "SUCCESS" and json.loads(row["result"]) == path
    assert json.loads(row["args"]) == [{"name": name, "password": "***"}]
    assert SECRET not in json.dumps(row)
    assert first["args"] == [{"name": name, "password": "***"}]

    # When every pod is stopped hard and started again
    took = restart_every_pod(cluster)
    all_ready(cluster)
    # Then a new caller reads the result, from PostgreSQL (Redis never held it)
    assert redis_cli(cluster, "EXISTS", f"celery-task-meta-{task_id}") == "0"
    after = json.loads(python(cluster, READ, task_id, "10"))
    assert after == first, (after, first)
    assert stored_row(cluster, task_id) == row
    assert psql(cluster, "SELECT count(*) FROM celery_taskmeta") == "1"
    print(f"\nevery pod stopped and started again in {took:.0f} s")
