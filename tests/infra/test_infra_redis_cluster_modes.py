"""`redis.mode: cluster` and `redis.mode: serverless` on both stacks, under Pulumi mocks: the
program renders, every Kubernetes object validates, every resource passes the policy pack,
the broker Secret carries the cluster URL (as a secret), and the AWS resources take the
arguments pulumi-aws documents (ReplicationGroup, ServerlessCache)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
from infra_harness import run_stack
from infra_manifests import clean, is_secret_value, manifests

from policy.checks import (
    elasticache_encrypted_with_auth,
    elasticache_serverless_guarded,
    violations,
)

NETWORK = {
    "vpcId": "vpc-0a1b2c3d4e5f60718",
    "subnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
    "nodeSecurityGroupId": "sg-0a1b2c3d4e5f60719",
}
MODES = {
    "cluster": {"mode": "cluster", **NETWORK, "shards": 4, "replicasPerShard": 2},
    "serverless": {"mode": "serverless", **NETWORK, "maxDataStorageGb": 20},
}
_RUNS: dict[tuple[str, str], dict[str, Any]] = {}


def render(stack: str, mode: str) -> dict[str, Any]:
    if (stack, mode) not in _RUNS:
        proc = run_stack(stack, "--set", f"redis={json.dumps(MODES[mode])}")
        assert proc.returncode == 0, proc.stderr[-4000:]
        _RUNS[(stack, mode)] = json.loads(proc.stdout)
    return _RUNS[(stack, mode)]


def of_type(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in result["resources"] if r["type"] == kind]


CASES = [(stack, mode) for stack in ("dev", "prod") for mode in MODES]


@pytest.mark.parametrize(("stack", "mode"), CASES)
def test_renders_validates_and_passes_the_pack(stack: str, mode: str) -> None:
    result = render(stack, mode)
    failures = {
        f"{r['type']}::{r['name']}": found
        for r in result["resources"]
        if (found := violations(r["type"], clean(r["inputs"])))
    }
    assert failures == {}
    custom = {"PodMonitor", "ServiceMonitor", "PrometheusRule", "ScaledObject"}
    for manifest in manifests(result["resources"]):
        if manifest["kind"] not in custom:
            kubernetes_validate.validate(manifest, "1.34", strict=True)
    # No in-cluster Redis in an ElastiCache mode
    assert not manifests(result["resources"], "StatefulSet")
    assert result["exports"]["redis_mode"]["value"] == mode


@pytest.mark.parametrize(("stack", "mode"), CASES)
def test_the_broker_secret_holds_the_cluster_url(stack: str, mode: str) -> None:
    result = render(stack, mode)
    broker = result["exports"]["broker_url"]
    assert broker["secret"] is True
    user = "celery-fleet" if mode == "serverless" else ""
    assert broker["value"].startswith(f"redisscluster://{user}:mockpw")
    assert broker["value"].endswith(":6379/0?ssl_cert_reqs=required")
    host = result["exports"]["redis_host"]["value"]
    assert f"@{host}:6379/" in broker["value"]
    (secret,) = [
        r
        for r in of_type(result, "kubernetes:core/v1:Secret")
        if r["inputs"]["metadata"]["name"] == "celery-fleet-broker"
    ]
    assert is_secret_value(secret["inputs"]["stringData"])
    for name, out in result["exports"].items():
        if name != "broker_url":
            assert "mockpw" not in str(out["value"]), name


def test_cluster_mode_replication_group() -> None:
    result = render("prod", "cluster")
    (group,) = of_type(result, "aws:elasticache/replicationGroup:ReplicationGroup")
    args = group["inputs"]
    assert args["clusterMode"] == "enabled"
    assert (args["numNodeGroups"], args["replicasPerNodeGroup"]) == (4, 2)
    assert args["automaticFailoverEnabled"] is True and args["multiAzEnabled"] is True
    assert args["transitEncryptionEnabled"] and args["atRestEncryptionEnabled"]
    assert "numCacheClusters" not in args
    (params,) = of_type(result, "aws:elasticache/parameterGroup:ParameterGroup")
    assert {p["name"]: p["value"] for p in params["inputs"]["parameters"]} == {
        "cluster-enabled": "yes",
        "maxmemory-policy": "noeviction",
    }
    (sg,) = of_type(result, "aws:ec2/securityGroup:SecurityGroup")
    (rule,) = sg["inputs"]["ingress"]
    assert (rule["fromPort"], rule["toPort"]) == (6379, 6379)
    assert rule["securityGroups"] == [NETWORK["nodeSecurityGroupId"]]
    assert "clustercfg." in result["exports"]["redis_host"]["value"]


def test_serverless_cache_with_rbac_limits_and_node_only_access() -> None:
    result = render("prod", "serverless")
    (cache,) = of_type(result, "aws:elasticache/serverlessCache:ServerlessCache")
    args = cache["inputs"]
    assert args["engine"] == "redis" and args["majorEngineVersion"] == "7"
    assert args["cacheUsageLimits"]["dataStorage"] == {"maximum": 20, "unit": "GB"}
    assert args["cacheUsageLimits"]["ecpuPerSeconds"] == [{"maximum": 5000}]
    (group,) = of_type(result, "aws:elasticache/userGroup:UserGroup")
    assert args["userGroupId"] == group["inputs"]["userGroupId"]
    users = {
        u["inputs"]["userName"]: u["inputs"] for u in of_type(result, "aws:elasticache/user:User")
    }
    assert users["default"]["accessString"].startswith("off")  # AWS requires it; disabled
    assert users["celery-fleet"]["accessString"].startswith("on")
    assert sorted(group["inputs"]["userIds"]) == sorted(u["userId"] for u in users.values())
    (sg,) = of_type(result, "aws:ec2/securityGroup:SecurityGroup")
    (rule,) = sg["inputs"]["ingress"]
    assert (rule["fromPort"], rule["toPort"]) == (6379, 6380)  # primary and reader endpoints
    assert rule["securityGroups"] == [NETWORK["nodeSecurityGroupId"]]
    assert not of_type(result, "aws:elasticache/replicationGroup:ReplicationGroup")


@pytest.mark.parametrize(
    ("redis", "expected"),
    [
        ({**MODES["cluster"], "replicasPerShard": 0}, "multiAz"),
        ({**MODES["cluster"], "shards": 0}, "shards"),
        ({**MODES["cluster"], "shardz": 3}, "shardz"),
        ({**MODES["serverless"], "maxEcpuPerSecond": 10}, "maxEcpuPerSecond"),
        ({**MODES["serverless"], "majorEngineVersion": "8"}, "majorEngineVersion"),
        ({"mode": "serverless"}, "vpcId"),
        ({**MODES["serverless"], "mode": "clustered"}, "mode"),
    ],
)
def test_bad_cluster_config_is_refused_naming_the_key(redis: dict[str, Any], expected: str) -> None:
    proc = run_stack("prod", "--set", f"redis={json.dumps(redis)}")
    assert proc.returncode != 0
    assert expected in proc.stderr


def test_policy_rules_for_the_cluster_modes() -> None:
    rg = "aws:elasticache/replicationGroup:ReplicationGroup"
    on = {"atRestEncryptionEnabled": True, "transitEncryptionEnabled": True,
          "authToken": "x" * 32, "clusterMode": "enabled",
          "automaticFailoverEnabled": True, "securityGroupIds": ["sg-1"]}  # fmt: skip
    assert elasticache_encrypted_with_auth(rg, on) == []
    found = elasticache_encrypted_with_auth(rg, {**on, "automaticFailoverEnabled": False})
    assert found == ["ReplicationGroup in cluster mode must set automaticFailoverEnabled"]
    sc = "aws:elasticache/serverlessCache:ServerlessCache"
    good = {"engine": "valkey", "userGroupId": "g", "securityGroupIds": ["sg-1"],
            "cacheUsageLimits": {"dataStorage": {"maximum": 10, "unit": "GB"},
                                 "ecpuPerSeconds": [{"maximum": 5000}]}}  # fmt: skip
    assert elasticache_serverless_guarded(sc, good) == []
    for key, word in (("userGroupId", "RBAC"), ("securityGroupIds", "security"),
                      ("cacheUsageLimits", "cacheUsageLimits")):  # fmt: skip
        found = elasticache_serverless_guarded(sc, {k: v for k, v in good.items() if k != key})
        assert len(found) == 1 and word in found[0], found
    assert elasticache_serverless_guarded(sc, {"engine": "memcached"}) == []
