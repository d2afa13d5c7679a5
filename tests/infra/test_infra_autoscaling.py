"""The HPA and KEDA paths scale a pool the same way: one definition of the behaviour."""

from __future__ import annotations

import json
from typing import Any

from infra_harness import run_stack, stack_result
from infra_manifests import manifests

from infra.autoscaler import ScalingIntent, hpa_spec, scaled_object_spec, scaling_behavior
from infra.config_sections import AutoscalerConfig
from service.catalog.naming import worker_deployment_name
from service.catalog.queues import CATALOG, Autoscaling

KEDA = '{"mode": "keda", "prometheusUrl": "http://prometheus:9090", "installProvider": true}'


def behaviors(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Scale target -> the behaviour the cluster's HPA controller will apply."""
    found = {}
    for m in manifests(resources, kind):
        spec = m["spec"]
        if kind == "ScaledObject":  # KEDA hands this to the HPA it creates
            found[spec["scaleTargetRef"]["name"]] = spec["advanced"][
                "horizontalPodAutoscalerConfig"
            ]["behavior"]
        else:
            found[spec["scaleTargetRef"]["name"]] = spec["behavior"]
    return found


def test_hpa_and_keda_objects_carry_the_same_scaling_policies() -> None:
    # Given the dev stack as written (HPA) and the same stack switched to KEDA
    hpa = behaviors(stack_result("dev")["resources"], "HorizontalPodAutoscaler")
    proc = run_stack("dev", "--set", f"autoscaler={KEDA}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    keda = behaviors(json.loads(proc.stdout)["resources"], "ScaledObject")
    # Then every pool scales up and down by the same policies in both modes
    pools = {worker_deployment_name(q) for q in CATALOG.names}
    assert set(hpa) == set(keda) == pools
    for pool in pools:
        assert hpa[pool] == keda[pool], pool
        assert {"type": "Pods", "value": 4, "periodSeconds": 15} in hpa[pool]["scaleUp"]["policies"]


def test_the_scale_down_window_is_the_stacks() -> None:
    cfg = AutoscalerConfig.model_validate(
        {"mode": "keda", "prometheusUrl": "http://p:9090", "scaleDownWindow": 42}
    )
    assert scaling_behavior(cfg)["scaleDown"]["stabilizationWindowSeconds"] == 42
    prod = behaviors(stack_result("prod")["resources"], "ScaledObject")
    assert all(b["scaleDown"]["stabilizationWindowSeconds"] == 300 for b in prod.values())


def test_one_intent_renders_the_same_bounds_target_and_behaviour_in_both_kinds() -> None:
    cfg = AutoscalerConfig.model_validate({"mode": "keda", "prometheusUrl": "http://p:9090"})
    intent = ScalingIntent("email", Autoscaling(0, 7, 9), scaling_behavior(cfg))
    hpa: Any = hpa_spec(intent, "celery-worker-email")
    keda = scaled_object_spec(intent, cfg, "celery-worker-email", "celery")
    assert (hpa["min_replicas"], hpa["max_replicas"]) == (0, 7)
    assert (keda["minReplicaCount"], keda["maxReplicaCount"]) == (0, 7)
    assert hpa["metrics"][0]["external"]["target"]["average_value"] == "9"
    assert keda["triggers"][0]["metadata"]["threshold"] == "9"
    assert hpa["metrics"][0]["external"]["metric"]["selector"] == {
        "match_labels": {"queue": "email"}
    }
    assert keda["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == intent.behavior
    assert hpa["behavior"]["scale_down"]["stabilization_window_seconds"] == 300
    assert hpa["scale_target_ref"] == {
        "api_version": "apps/v1",
        "kind": "Deployment",
        "name": "celery-worker-email",
    }
