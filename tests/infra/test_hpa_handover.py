"""A switch to HPA mode never leaves a worker pool at 0 replicas; a switch to KEDA keeps the
current count. (The HPA controller never scales a target at 0: "ScalingDisabled".)"""

from __future__ import annotations

from typing import Any

import pytest
from infra_harness import dev_in_mode, stack_result
from infra_manifests import by_name, manifests, pod_spec

from infra.hpa_handover import HANDOVER
from service.catalog.naming import worker_deployment_name
from service.catalog.queues import CATALOG

WORKERS = {worker_deployment_name(q) for q in CATALOG.names}


def floors(job: dict[str, Any]) -> dict[str, int]:
    (container,) = pod_spec(job)["containers"]
    assert container["command"] == ["python", "-m", "service.ops.scale_floor"]
    return {a.split("=")[0]: int(a.split("=")[1]) for a in container["args"]}


@pytest.mark.parametrize("old", ["keda"])
def test_hpa_mode_raises_pools_left_at_zero_once_the_hpas_exist(old: str) -> None:
    # Given the prod-like KEDA stack (pools may sit at 0) switched to HPA mode
    before, after = dev_in_mode(old), dev_in_mode("hpa")
    assert not manifests(before["resources"], "Job")
    (job,) = manifests(after["resources"], "Job")
    assert job["metadata"]["name"] == HANDOVER
    # Then a Job raises every worker Deployment to at least one replica (its floor)...
    got = floors(job)
    assert set(got) == WORKERS
    assert all(n >= 1 for n in got.values())
    deployments = by_name(after["resources"], "Deployment")
    for name, floor in got.items():
        assert floor == max(deployments[name]["spec"]["replicas"], 1)
    # ...after the HPAs exist (the handover waits for every worker pool, autoscaler included)
    (handover,) = [o for o in after["options"] if o["type"] == "celery-fleet:k8s:HpaHandover"]
    pools = {f"celery-fleet:k8s:WorkerPool::{q}" for q in CATALOG.names}
    assert pools <= set(handover["dependsOn"])
    order = [r["type"] for r in after["resources"]]
    last_hpa = max(i for i, t in enumerate(order) if t.endswith("HorizontalPodAutoscaler"))
    assert order.index("kubernetes:batch/v1:Job") > last_hpa
    # And it reruns after each change rather than colliding with its old self
    (job_opts,) = [o for o in after["options"] if o["type"] == "kubernetes:batch/v1:Job"]
    assert job_opts["deleteBeforeReplace"] is True


def test_the_handover_may_touch_only_the_worker_scales() -> None:
    resources = stack_result("dev")["resources"]
    (role,) = manifests(resources, "Role")
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "resourceNames": sorted(WORKERS),
            "verbs": ["get", "patch"],
        }
    ]
    (binding,) = manifests(resources, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": HANDOVER, "namespace": "celery-fleet"}
    ]
    (job,) = manifests(resources, "Job")
    spec = pod_spec(job)
    assert spec["serviceAccountName"] == HANDOVER and spec["automountServiceAccountToken"]
    # It needs no broker, no credentials of the fleet
    assert spec["containers"][0]["env"] == []


def test_keda_mode_keeps_the_current_count() -> None:
    # Given the switch to KEDA: nothing sets a pool's replicas. No handover Job; the
    # Deployments leave spec.replicas to the autoscaler; deleting an HPA changes no count;
    # the ScaledObjects do not restore an "original" count when replaced later.
    keda = dev_in_mode("keda")
    assert not manifests(keda["resources"], "Job")
    for o in keda["options"]:
        if o["type"] == "kubernetes:apps/v1:Deployment" and o["name"] in CATALOG.names:
            assert o["ignoreChanges"] == ["spec.replicas"], o["name"]
    for so in manifests(keda["resources"], "ScaledObject"):
        assert not so["spec"].get("advanced", {}).get("restoreToOriginalReplicaCount")
