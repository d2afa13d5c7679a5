"""The program under Pulumi mocks, per stack, with config from Pulumi.<stack>.yaml."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from infra_harness import ROOT, stack_result
from infra_manifests import by_name, manifests, pod_spec

from service.catalog.naming import worker_deployment_name
from service.catalog.queues import CATALOG

Resources = list[dict[str, Any]]


def of_type(resources: Resources, typ: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["type"] == typ]


def stack_yaml(stack: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return dict(doc["config"])


def test_one_worker_deployment_pdb_and_autoscaler_per_catalog_queue(
    stack: str, resources: Resources
) -> None:
    # Given the catalog and the stack's autoscaler mode
    deployments = by_name(resources, "Deployment")
    pdbs = [p for p in manifests(resources, "PodDisruptionBudget")
            if p["metadata"]["name"].startswith("celery-worker-")]  # fmt: skip
    kind = "ScaledObject" if stack == "prod" else "HorizontalPodAutoscaler"
    scalers = manifests(resources, kind)
    other = "HorizontalPodAutoscaler" if kind == "ScaledObject" else "ScaledObject"

    # Then every queue has exactly one of each, and nothing else is a worker
    workers = {n for n in deployments if n.startswith("celery-worker-")}
    assert workers == {worker_deployment_name(q.name) for q in CATALOG}
    assert sorted(p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"]
                  for p in pdbs) == sorted(workers)  # fmt: skip
    assert sorted(s["spec"]["scaleTargetRef"]["name"] for s in scalers) == sorted(workers)
    assert manifests(resources, other) == []
    assert len(of_type(resources, "celery-fleet:k8s:WorkerPool")) == len(CATALOG)


def test_worker_pods_run_their_queue_with_catalog_settings(resources: Resources) -> None:
    deployments = by_name(resources, "Deployment")
    for queue in CATALOG:
        spec = pod_spec(deployments[worker_deployment_name(queue.name)])
        (container,) = spec["containers"]
        args = container["args"]
        assert container["command"] == ["fleet"]
        assert args[:3] == ["worker", "-Q", queue.name]
        # One route for worker settings: the worker derives them from the catalog
        # (service.worker.hooks), so the pod passes none that could disagree with it.
        settings = {"-c", "--concurrency", "--prefetch-multiplier", "--soft-time-limit"}
        assert not (settings | {"--time-limit"}) & set(args), args
        # Scale-down must never SIGKILL a task still inside its hard limit.
        assert spec["terminationGracePeriodSeconds"] > queue.hard_time_limit
        liveness = ["python", "-m", "service.liveness"]
        assert container["livenessProbe"]["exec"]["command"] == liveness
        assert container["startupProbe"]["exec"]["command"] == liveness
        assert {"name": "metrics", "containerPort": 9808} in container["ports"]
        labels = deployments[worker_deployment_name(queue.name)]["metadata"]["labels"]
        for key in ("name", "instance", "component", "part-of", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels


def test_every_workload_is_restricted_and_reads_the_broker_from_the_secret(
    resources: Resources,
) -> None:
    for kind in ("Deployment", "StatefulSet"):
        for manifest in manifests(resources, kind):
            spec = pod_spec(manifest)
            assert spec["automountServiceAccountToken"] is False
            for c in spec["containers"]:
                sc = c["securityContext"]
                assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
                assert sc["readOnlyRootFilesystem"] is True
                assert sc["allowPrivilegeEscalation"] is False
                assert sc["capabilities"] == {"drop": ["ALL"]}
                assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
                assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
                env = {e["name"]: e for e in c.get("env", [])}
                if kind == "Deployment":
                    ref = env["CELERY_BROKER_URL"]["valueFrom"]["secretKeyRef"]
                    assert ref == {"name": "celery-fleet-broker", "key": "broker-url"}
                    assert "value" not in env["CELERY_BROKER_URL"]
                mounted = {m["mountPath"] for m in c.get("volumeMounts", [])}
                if c["name"] == "worker":
                    assert {"/tmp", "/var/run/fleet-metrics", "/var/run/fleet-heartbeat"} <= mounted
                    assert env["FLEET_HEARTBEAT_FILE"]["value"].startswith(
                        "/var/run/fleet-heartbeat/"
                    )


def test_beat_is_an_active_and_a_standby_pod_locked_in_redis(resources: Resources) -> None:
    beats = [d for d in manifests(resources, "Deployment")
             if d["metadata"]["labels"]["app.kubernetes.io/component"] == "beat"]  # fmt: skip
    assert len(beats) == 1
    beat = beats[0]
    # Two pods, preferably on two nodes: the lock in Redis decides which one sends
    assert beat["spec"]["replicas"] == 2
    assert beat["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    spec = pod_spec(beat)
    (term,) = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    (container,) = spec["containers"]
    assert container["args"] == ["beat"]
    # No schedule file: the schedule lives in Redis
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "FLEET_BEAT_SCHEDULE_FILE" not in env
    assert {v["name"] for v in spec["volumes"]} == {"tmp"}
    pdb = by_name(resources, "PodDisruptionBudget")[beat["metadata"]["name"]]
    assert pdb["spec"]["maxUnavailable"] == 1
    scalers = manifests(resources, "HorizontalPodAutoscaler") + manifests(resources, "ScaledObject")
    assert all(s["spec"]["scaleTargetRef"]["name"] != beat["metadata"]["name"] for s in scalers)


def test_broker_url_is_a_secret_output_and_a_secret_input(
    stack: str, result: dict[str, Any]
) -> None:
    broker = result["exports"]["broker_url"]
    assert broker["secret"] is True
    scheme = "rediss://:" if stack == "prod" else "redis://:"
    assert broker["value"].startswith(scheme)
    secrets = [r for r in result["resources"] if r["type"] == "kubernetes:core/v1:Secret"
               and r["inputs"]["metadata"]["name"] == "celery-fleet-broker"]  # fmt: skip
    (secret,) = secrets
    from infra_manifests import is_secret_value

    assert is_secret_value(secret["inputs"]["stringData"])
    # And no other export leaks it.
    for name, out in result["exports"].items():
        if name != "broker_url":
            assert "mockpw" not in str(out["value"]), name


def test_dev_runs_redis_in_cluster_with_aof_on_a_pvc() -> None:
    stack_resources = stack_result("dev")["resources"]
    assert not [r for r in stack_resources if r["type"].startswith("aws:")]
    (sts,) = manifests(stack_resources, "StatefulSet")
    (container,) = pod_spec(sts)["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert container["readinessProbe"] and container["livenessProbe"]
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "celery-fleet-redis"
    policies = by_name(stack_resources, "NetworkPolicy")
    redis_policy = policies["celery-fleet-redis"]["spec"]
    assert redis_policy["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "celery-fleet"}}}
    ]


def test_prod_uses_elasticache_encrypted_with_auth_cluster_mode_off_multi_az() -> None:
    res = stack_result("prod")["resources"]
    config = stack_yaml("prod")["celery-fleet:redis"]
    (group,) = of_type(res, "aws:elasticache/replicationGroup:ReplicationGroup")
    rg = group["inputs"]
    assert rg["engine"] == "redis"
    assert rg["clusterMode"] == "disabled" and "numNodeGroups" not in rg
    assert rg["atRestEncryptionEnabled"] is True
    assert rg["transitEncryptionEnabled"] is True
    assert rg["authToken"]  # from RandomPassword
    assert rg["automaticFailoverEnabled"] is True and rg["multiAzEnabled"] is True
    assert rg["numCacheClusters"] >= 2
    (params,) = of_type(res, "aws:elasticache/parameterGroup:ParameterGroup")
    assert params["inputs"]["family"] == "redis7"
    assert {"name": "maxmemory-policy", "value": "noeviction"} in params["inputs"]["parameters"]
    (sg,) = of_type(res, "aws:ec2/securityGroup:SecurityGroup")
    (rule,) = sg["inputs"]["ingress"]
    assert (rule["fromPort"], rule["toPort"], rule["protocol"]) == (6379, 6379, "tcp")
    assert rule["securityGroups"] == [config["nodeSecurityGroupId"]]
    assert not rule.get("cidrBlocks") and not rule.get("ipv6CidrBlocks")
    (subnets,) = of_type(res, "aws:elasticache/subnetGroup:SubnetGroup")
    assert subnets["inputs"]["subnetIds"] == config["subnetIds"]
    assert manifests(res, "StatefulSet") == []
    assert of_type(res, "random:index/randomPassword:RandomPassword")


@pytest.mark.parametrize("stack_name", ["dev", "prod"])
def test_stack_overrides_reach_the_autoscalers(stack_name: str) -> None:
    res = stack_result(stack_name)["resources"]
    overrides = stack_yaml(stack_name).get("celery-fleet:queues", {})
    kind = "ScaledObject" if stack_name == "prod" else "HorizontalPodAutoscaler"
    scalers = {m["spec"]["scaleTargetRef"]["name"]: m["spec"] for m in manifests(res, kind)}
    for queue in CATALOG:
        spec = scalers[worker_deployment_name(queue.name)]
        lo, hi = (("minReplicaCount", "maxReplicaCount") if kind == "ScaledObject"
                  else ("minReplicas", "maxReplicas"))  # fmt: skip
        want = overrides.get(queue.name, {})
        assert spec[hi] == want.get("maxReplicas", queue.autoscaling.max_replicas)
        assert spec[lo] == want.get("minReplicas", queue.autoscaling.min_replicas)
        assert spec[lo] <= spec[hi]
        if kind == "HorizontalPodAutoscaler":
            assert spec[lo] >= 1


def test_flower_is_behind_auth_and_its_port_admits_only_ingress_and_monitoring(
    stack: str, resources: Resources
) -> None:
    flower = by_name(resources, "Deployment")["celery-flower"]
    (container,) = pod_spec(flower)["containers"]
    env = {e["name"]: e for e in container["env"]}
    ref = env["FLEET_FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "celery-fleet-flower", "key": "basic-auth"}
    policy = by_name(resources, "NetworkPolicy")["celery-flower"]["spec"]
    peers = policy["ingress"][0]["from"]
    namespaces = sorted(p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                        for p in peers)  # fmt: skip
    assert namespaces == ["ingress-nginx", "monitoring"]
    assert all("podSelector" not in p for p in peers)
    ingresses = manifests(resources, "Ingress")
    if stack == "prod":
        (ingress,) = ingresses
        paths = {p["path"]: p for p in ingress["spec"]["rules"][0]["http"]["paths"]}
        for unauthenticated in ("/metrics", "/healthcheck"):
            assert paths[unauthenticated]["pathType"] == "Exact"
            backend = paths[unauthenticated]["backend"]["service"]["name"]
            assert backend != "celery-flower"
    else:
        assert ingresses == []


def test_namespace_default_denies_ingress_and_service_account_has_no_token(
    resources: Resources,
) -> None:
    (ns,) = manifests(resources, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # Every ServiceAccount (the fleet's; the HPA handover Job's in HPA mode) mounts no token
    # unless a pod asks for it: only the handover Job's pod does.
    accounts = by_name(resources, "ServiceAccount")
    assert "celery-fleet" in accounts
    assert all(sa["automountServiceAccountToken"] is False for sa in accounts.values())
    for kind in ("Deployment", "StatefulSet"):
        for workload in manifests(resources, kind):
            assert pod_spec(workload)["automountServiceAccountToken"] is False
    deny = by_name(resources, "NetworkPolicy")["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_every_resource_is_parented_by_a_component(result: dict[str, Any]) -> None:
    # urn:pulumi:<stack>::celery-fleet::<ancestor types joined by $>::<name>
    urns = result["urns"]
    assert len(urns) >= len(result["resources"])
    for urn in urns:
        chain = urn.split("::")[2].split("$")
        if chain[-1].startswith("celery-fleet:") or chain[-1].startswith("pulumi:"):
            continue
        assert any(t.startswith("celery-fleet:") for t in chain[:-1]), urn


def test_the_external_metrics_provider_matches_the_autoscaler_mode(stack: str) -> None:
    res = stack_result(stack)["resources"]
    (release,) = of_type(res, "kubernetes:helm.sh/v3:Release")
    values = release["inputs"].get("values", {})
    if stack == "dev":  # hpa: prometheus-adapter serving the external metric
        assert release["inputs"]["chart"] == "prometheus-adapter"
        (rule,) = values["rules"]["external"]
        assert rule["name"]["as"] == "celery_queue_length"
        assert rule["seriesQuery"].startswith("celery_queue_length{")
        assert "<<.LabelMatchers>>" in rule["metricsQuery"]
        assert rule["resources"]["overrides"]["namespace"]["resource"] == "namespace"
    else:
        assert release["inputs"]["chart"] == "keda"
    # Either way the pools wait for it (CRDs / the metric must exist first).
    assert any("ExternalMetricsProvider" in urn for urn in stack_result(stack)["urns"])


# AWS (and the provider's validation) allow only these in security group and rule
# descriptions, up to 255 characters; an apostrophe once failed prod preview.
AWS_SG_DESCRIPTION = re.compile(r"^[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}$")


def test_security_group_descriptions_are_valid_for_aws() -> None:
    groups = of_type(stack_result("prod")["resources"], "aws:ec2/securityGroup:SecurityGroup")
    assert groups
    for group in groups:
        inputs = group["inputs"]
        rules = [*inputs.get("ingress", []), *inputs.get("egress", [])]
        texts = [inputs.get("description", ""), *(r.get("description", "") for r in rules)]
        bad = [t for t in texts if not AWS_SG_DESCRIPTION.match(t)]
        assert not bad, f"{group['name']}: descriptions AWS rejects: {bad}"
