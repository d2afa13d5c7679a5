"""Every `redis.mode` x `results.mode` combination on both stacks, under mocks: the program
renders, every resource passes the whole policy pack (the production checks too, with
Pulumi's `protect` read from the resource options as the engine passes it), every built-in
Kubernetes object validates strictly, and a production broker in every ElastiCache mode is
durable and protected.

The redis modes are each stack's own (dev: in-cluster, prod: elasticache) and the three
ElastiCache modes; `external` needs a secret URL and creates no AWS resource
(test_redis_day2.py renders it)."""

from __future__ import annotations

import functools
import json
from typing import Any

import kubernetes_validate
import pytest
from infra_harness import run_stack
from infra_manifests import clean, manifests

from policy.checks import violations
from policy.prod import Context

NETWORK = {
    "vpcId": "vpc-0a1b2c3d4e5f60718",
    "subnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
    "nodeSecurityGroupId": "sg-0a1b2c3d4e5f60719",
}
REDIS: dict[str, dict[str, Any] | None] = {
    "own": None,
    "elasticache": {"mode": "elasticache", **NETWORK},
    "cluster": {"mode": "cluster", **NETWORK},
    "serverless": {"mode": "serverless", **NETWORK},
}
RESULTS: dict[str, dict[str, Any] | None] = {
    "own": None,
    "postgres-in-cluster": {"mode": "postgres"},
    "postgres-rds": {"mode": "postgres", "provider": "rds", **NETWORK},
    "external": {"mode": "external", "secretName": "audit-results"},
}
# Production runs images by digest only (policy prod-images-pinned-by-digest), the in-cluster
# PostgreSQL's too: a prod stack that picks it pins `results.image` (see the test below).
PINNED_POSTGRES = "postgres:16.4@sha256:" + "0" * 64
CUSTOM_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule", "ScaledObject"}
BROKERS = {
    "aws:elasticache/replicationGroup:ReplicationGroup",
    "aws:elasticache/serverlessCache:ServerlessCache",
}
# prod's own broker is elasticache: its override would only drop prod's day-2 keys
CASES = [
    (stack, redis, results)
    for stack in ("dev", "prod")
    for redis in REDIS
    if not (stack == "prod" and redis == "elasticache")
    for results in RESULTS
]


@functools.cache
def render(stack: str, redis: str, results: str) -> dict[str, Any]:
    args: list[str] = []
    if REDIS[redis] is not None:
        args += ["--set", f"redis={json.dumps(REDIS[redis])}"]
    chosen = RESULTS[results]
    if stack == "prod" and results == "postgres-in-cluster":
        chosen = {**RESULTS[results], "image": PINNED_POSTGRES}  # type: ignore[dict-item]
    if chosen is not None:
        args += ["--set", f"results={json.dumps(chosen)}"]
    proc = run_stack(stack, *args)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize(("stack", "redis", "results"), CASES)
def test_every_mode_combination_renders_passes_the_pack_and_the_schema(
    stack: str, redis: str, results: str
) -> None:
    result = render(stack, redis, results)
    protected = {(o["type"], o["name"]) for o in result["options"] if o["protect"]}
    failures = {}
    for r in result["resources"]:
        context = Context(stack, protect=(r["type"], r["name"]) in protected)
        found = violations(r["type"], clean(r["inputs"]), context)
        if found:
            failures[f"{r['type']}::{r['name']}"] = found
    assert failures == {}
    schema_failures = []
    for manifest in manifests(result["resources"]):
        if manifest["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(manifest, "1.34", strict=True)
        except kubernetes_validate.ValidationError as exc:
            schema_failures.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {exc}")
    assert not schema_failures
    exports = result["exports"]
    if REDIS[redis] is not None:
        assert exports["redis_mode"]["value"] == REDIS[redis]["mode"]  # type: ignore[index]
    if RESULTS[results] is not None:
        assert exports["results_mode"]["value"] == RESULTS[results]["mode"]  # type: ignore[index]
    # Every ElastiCache broker is protected (the pack requires it in prod; the default
    # holds in dev too) and alarmed.
    brokers = [r for r in result["resources"] if r["type"] in BROKERS]
    assert all((r["type"], r["name"]) in protected for r in brokers)
    alarms = [r for r in result["resources"] if r["type"].endswith("metricAlarm:MetricAlarm")]
    assert bool(brokers) <= any(a["name"].startswith("redis-alarms-") for a in alarms)


@pytest.mark.parametrize("redis", ["cluster", "serverless"])
def test_the_pack_refuses_an_unprotected_prod_broker_in_every_mode(redis: str) -> None:
    result = render("prod", redis, "own")
    (broker,) = [r for r in result["resources"] if r["type"] in BROKERS]
    props = clean(broker["inputs"])
    found = violations(broker["type"], props, Context("prod", protect=False))
    assert any("protected" in m for m in found.get("prod-broker-durable", [])), found
    no_snapshots = {**props, "snapshotRetentionLimit": 0}
    found = violations(broker["type"], no_snapshots, Context("prod", protect=True))
    assert any("snapshotRetentionLimit" in m for m in found["prod-broker-durable"]), found
    # dev is not held to it
    assert "prod-broker-durable" not in violations(broker["type"], props, Context("dev"))


def test_prod_refuses_an_in_cluster_postgres_image_by_tag() -> None:
    proc = run_stack("prod", "--set", f"results={json.dumps(RESULTS['postgres-in-cluster'])}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    (database,) = [
        r
        for r in result["resources"]
        if r["name"] == "results-postgres" and r["type"] == "kubernetes:apps/v1:StatefulSet"
    ]
    found = violations(database["type"], clean(database["inputs"]), Context("prod"))
    assert "prod-images-pinned-by-digest" in found
