"""Per-queue autoscaling on the external metric `celery_queue_length{queue=...}`, either as
a plain HPA (metric served by prometheus-adapter) or a KEDA ScaledObject. Only one
external-metrics provider can own the API per cluster, hence one mode per stack."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from dashboards.promql import exporter_gauge
from infra.config import AutoscalerConfig, QueueConfig
from infra.labels import app_labels
from service.catalog.naming import autoscaler_name
from service.catalog.queues import Autoscaling

METRIC = "celery_queue_length"
HPA_TYPE = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT_TYPE = "kubernetes:keda.sh/v1alpha1:ScaledObject"


def mode_switch_options(parent: pulumi.Resource, other_type: str) -> pulumi.ResourceOptions:
    """Let `autoscaler.mode` switch in place in one `pulumi up`.

    Two unrelated resources would be created new-first and deleted old-last; KEDA's admission
    webhook rejects a ScaledObject while an HPA it does not own targets the same Deployment.
    As one resource (the alias names the other kind's URN), a kind change is a replacement,
    and delete-before-replace removes the old autoscaler before the new one is created."""
    return pulumi.ResourceOptions(
        parent=parent,
        aliases=[pulumi.Alias(type_=other_type)],
        replace_on_changes=["apiVersion", "kind"],
        delete_before_replace=True,
    )


# KEDA reads the scaler's error threshold per trigger: after this many failed reads in a row
# the fallback below answers instead of the (missing) metric.
FALLBACK_FAILURE_THRESHOLD = 3


def fail_safe(bounds: Autoscaling) -> tuple[dict[str, str], dict[str, Any]]:
    """(trigger metadata, ScaledObject `fallback`): a missing or stale queue metric never
    scales a pool down, in KEDA mode as in HPA mode.

    KEDA's Prometheus scaler reads an empty result as 0 by default (`ignoreNullValues`), so
    a Redis, exporter or Prometheus outage would look like an empty queue and shrink the
    pools. With `ignoreNullValues: "false"` an empty result is an error: the HPA holds its
    count (as with prometheus-adapter in HPA mode), KEDA does not scale to zero (its
    executor skips that when a fallback with replicas > 0 exists), and after
    FALLBACK_FAILURE_THRESHOLD failed reads the fallback feeds the HPA max(current replicas,
    `replicas`) (`currentReplicasIfHigher`, KEDA >= 2.17): never fewer than now."""
    metadata = {"ignoreNullValues": "false"}
    fallback = {
        "failureThreshold": FALLBACK_FAILURE_THRESHOLD,
        # > 0: KEDA treats a zero fallback as none and would scale an idle pool to zero.
        "replicas": max(bounds.min_replicas, 1),
        "behavior": "currentReplicasIfHigher",
    }
    return metadata, fallback


def queue_length_query(queue: str, namespace: str) -> str:
    """PromQL for one queue's backlog: the dashboards' reduction (`max` de-duplicates
    exporter replicas) over the one series of this queue in this namespace."""
    return exporter_gauge(METRIC, f'queue="{queue}",namespace="{namespace}"', by=())


def scaling_behavior(cfg: AutoscalerConfig) -> dict[str, Any]:
    """The one definition of how a worker pool scales, in Kubernetes API form (the HPA's
    `behavior`; KEDA passes it to the HPA it manages). Scale up at once on a backlog; scale
    down slowly, a bounded share at a time, so a brief lull does not tear down workers that
    the next burst needs."""
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": cfg.scale_down_stabilization,
            "selectPolicy": "Min",
            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
        },
    }


@dataclasses.dataclass(frozen=True)
class ScalingIntent:
    """How one worker pool scales, whichever object carries it: replica bounds and the
    backlog per replica (`bounds`, the copy the alert rules read), the scaling `behavior`
    (API form) and the queue whose backlog is the metric. `hpa_spec` and
    `scaled_object_spec` render it; only KEDA's own knobs (polling, cooldown, the fail-safe)
    are added by the latter."""

    queue: str
    bounds: Autoscaling
    behavior: dict[str, Any]


def scaling_intent(queue: QueueConfig, cfg: AutoscalerConfig) -> ScalingIntent:
    return ScalingIntent(queue.name, queue.autoscaling, scaling_behavior(cfg))


def _target(deployment: pulumi.Input[str]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment}


def hpa_spec(
    intent: ScalingIntent, deployment: pulumi.Input[str]
) -> k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgsDict:
    """The HPA spec (HPA mode; prometheus-adapter serves the metric). Written in API form
    like the ScaledObject and converted once to the snake_case keys pulumi_kubernetes'
    typed args expect; the only map keyed by data, `matchLabels`, has the key `queue`,
    which the conversion leaves as it is."""
    bounds = intent.bounds
    spec = {
        "scaleTargetRef": _target(deployment),
        "minReplicas": bounds.min_replicas,
        "maxReplicas": bounds.max_replicas,
        "metrics": [
            {
                "type": "External",
                "external": {
                    "metric": {
                        "name": METRIC,
                        "selector": {"matchLabels": {"queue": intent.queue}},
                    },
                    "target": {
                        "type": "AverageValue",
                        "averageValue": str(bounds.backlog_per_replica),
                    },
                },
            }
        ],
        "behavior": intent.behavior,
    }
    return cast(k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgsDict, _snake_keys(spec))


def _snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): _snake_keys(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_snake_keys(v) for v in value]
    return value


def scaled_object_spec(
    intent: ScalingIntent,
    cfg: AutoscalerConfig,
    deployment: pulumi.Input[str],
    namespace_name: str,
) -> dict[str, Any]:
    """The KEDA ScaledObject spec (KEDA mode): the same intent, KEDA polling Prometheus
    itself, fail-safe on a missing metric (`fail_safe`)."""
    bounds = intent.bounds
    trigger_safety, fallback = fail_safe(bounds)
    return {
        "scaleTargetRef": _target(deployment),
        "minReplicaCount": bounds.min_replicas,
        "maxReplicaCount": bounds.max_replicas,
        "pollingInterval": cfg.polling_interval,
        "cooldownPeriod": cfg.scale_down_stabilization,
        "fallback": fallback,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": intent.behavior}},
        "triggers": [
            {
                "type": "prometheus",
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": cfg.prometheus_url,
                    "query": queue_length_query(intent.queue, namespace_name),
                    "threshold": str(bounds.backlog_per_replica),
                    "activationThreshold": "0",
                    **trigger_safety,
                },
            }
        ],
    }


class QueueAutoscaler(pulumi.ComponentResource):
    """An HPA or a ScaledObject for one worker Deployment. Output: `kind`."""

    kind: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        queue: QueueConfig,
        cfg: AutoscalerConfig,
        deployment: pulumi.Input[str],
        namespace: pulumi.Input[str],
        namespace_name: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:QueueAutoscaler", resource_name, None, opts)
        name = autoscaler_name(queue.name)
        labels = app_labels("celery-worker", name, "autoscaler")
        intent = scaling_intent(queue, cfg)
        if cfg.mode == "hpa":
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                resource_name,
                metadata={"name": name, "namespace": namespace, "labels": labels},
                spec=hpa_spec(intent, deployment),
                opts=mode_switch_options(self, SCALED_OBJECT_TYPE),
            )
            self.kind = pulumi.Output.from_input("HorizontalPodAutoscaler")
        else:
            k8s.apiextensions.CustomResource(
                resource_name,
                api_version="keda.sh/v1alpha1",
                kind="ScaledObject",
                metadata={"name": name, "namespace": namespace, "labels": labels},
                spec=scaled_object_spec(intent, cfg, deployment, namespace_name),
                opts=mode_switch_options(self, HPA_TYPE),
            )
            self.kind = pulumi.Output.from_input("ScaledObject")
        self.register_outputs({"kind": self.kind})
