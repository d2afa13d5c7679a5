"""Every Kubernetes object the program creates, as a manifest, against the API schema of
two supported Kubernetes versions (strict: unknown fields fail). Custom resources, which
kubernetes-validate has no schema for, get explicit checks of what their operators need."""

from __future__ import annotations

import functools
import re
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import pytest
from infra_manifests import manifests

K8S_VERSIONS = ("1.30", "1.34")
CUSTOM_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule", "ScaledObject"}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# validate() re-reads a 1.5 MB definitions file per call; the schemas never change.
kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_builtin_object_validates_strictly(
    version: str, resources: list[dict[str, Any]]
) -> None:
    objects = [m for m in manifests(resources) if m["kind"] not in CUSTOM_KINDS]
    assert len(objects) > 20
    failures = []
    for manifest in objects:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_names_and_namespaces(resources: list[dict[str, Any]]) -> None:
    for manifest in manifests(resources):
        meta = manifest["metadata"]
        assert DNS_1123.match(meta["name"]) and len(meta["name"]) <= 63, meta
        if manifest["kind"] != "Namespace":
            assert meta.get("namespace") in ("celery-fleet", "monitoring"), meta


def _monitor_selector_ok(spec: dict[str, Any]) -> bool:
    labels = spec.get("selector", {}).get("matchLabels")
    return isinstance(labels, dict) and bool(labels)


def test_pod_and_service_monitors(resources: list[dict[str, Any]]) -> None:
    pod_monitors = manifests(resources, "PodMonitor")
    service_monitors = manifests(resources, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in pod_monitors} == {"celery-workers", "celery-flower"}
    assert len(service_monitors) == 1
    for m in pod_monitors + service_monitors:
        assert m["apiVersion"] == "monitoring.coreos.com/v1"
        assert m["metadata"]["labels"]["release"], "kube-prometheus-stack selects on it"
        assert _monitor_selector_ok(m["spec"])
    for m in pod_monitors:
        endpoints = m["spec"]["podMetricsEndpoints"]
        assert endpoints and all(isinstance(e["port"], str) and e["path"] for e in endpoints)
    workers = next(m for m in pod_monitors if m["metadata"]["name"] == "celery-workers")
    assert workers["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    (exporter,) = service_monitors
    assert exporter["spec"]["endpoints"][0]["port"] == "metrics"


def test_prometheus_rule_carries_the_alert_groups(
    resources: list[dict[str, Any]],
) -> None:
    from infra.assets import load_rule_groups

    # The committed files' groups and alerts; the numbers are the stack's own
    # (test_infra_stack_rules.py checks those).
    groups = load_rule_groups()
    rules = manifests(resources, "PrometheusRule")
    if not groups:
        assert rules == []
        return
    (rule,) = rules
    assert [g["name"] for g in rule["spec"]["groups"]] == [g["name"] for g in groups]
    for deployed, committed in zip(rule["spec"]["groups"], groups, strict=True):
        assert [r.get("alert") for r in deployed["rules"]] == [
            r.get("alert") for r in committed["rules"]
        ]
    for group in rule["spec"]["groups"]:
        assert group["name"] and isinstance(group["rules"], list)
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r), r
            assert isinstance(r["expr"], str) and r["expr"].strip()
            if "alert" in r:
                assert r.get("labels", {}).get("severity"), r["alert"]


def test_scaled_objects_have_what_keda_requires(
    stack: str, resources: list[dict[str, Any]]
) -> None:
    scaled = manifests(resources, "ScaledObject")
    if stack != "prod":
        assert scaled == []
        return
    assert scaled
    for so in scaled:
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        spec = so["spec"]
        assert spec["scaleTargetRef"]["name"].startswith("celery-worker-")
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "prometheus"
        meta = trigger["metadata"]
        # KEDA reads trigger metadata as strings only.
        assert all(isinstance(v, str) for v in meta.values())
        assert meta["serverAddress"].startswith("http")
        assert re.fullmatch(r'max\(celery_queue_length\{queue="[a-z_]+",namespace="[a-z-]+"\}\)',
                            meta["query"])  # fmt: skip
        assert float(meta["threshold"]) >= 1
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60


def test_hpas_scale_on_the_external_queue_length(
    stack: str, resources: list[dict[str, Any]]
) -> None:
    for hpa in manifests(resources, "HorizontalPodAutoscaler"):
        spec = hpa["spec"]
        (metric,) = spec["metrics"]
        assert metric["type"] == "External"
        ext = metric["external"]
        assert ext["metric"]["name"] == "celery_queue_length"
        queue = ext["metric"]["selector"]["matchLabels"]["queue"]
        assert spec["scaleTargetRef"]["name"] == "celery-worker-" + queue.replace("_", "-")
        assert ext["target"]["type"] == "AverageValue" and int(ext["target"]["averageValue"]) >= 1
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
        assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0


def test_dashboard_configmaps_for_the_grafana_sidecar(resources: list[dict[str, Any]]) -> None:
    from infra.assets import load_dashboards

    dashboards = load_dashboards()
    maps = [m for m in manifests(resources, "ConfigMap")
            if m["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]  # fmt: skip
    assert len(maps) == len(dashboards)
    texts = {text for m in maps for text in m["data"].values()}
    assert texts == set(dashboards.values())
    for m in maps:
        assert m["metadata"]["namespace"] == "monitoring"
        assert len(str(m["data"])) < 1_000_000  # ConfigMaps are capped at 1 MiB


def test_the_schema_check_is_strict() -> None:
    # Given a Deployment with a misspelt field (the kind of slip camelCase conversion makes)
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i", "read_only": True}]},
            },
        },
    }
    # Then validation rejects it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)
