"""Optionally install the cluster's external-metrics provider: prometheus-adapter (hpa
mode, with the `celery_queue_length` external rule) or KEDA (keda mode)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from dashboards.promql import exporter_gauge
from infra.autoscaler import METRIC
from infra.config import AutoscalerConfig

PROMETHEUS_ADAPTER_CHART = (
    "prometheus-adapter",
    "4.11.0",
    "https://prometheus-community.github.io/helm-charts",
)
# 2.17 is the first with `fallback.behavior` (infra.autoscaler.fail_safe relies on it; an
# older CRD would prune the field and fall back to a static replica count).
KEDA_CHART = ("keda", "2.17.2", "https://kedacore.github.io/charts")
# The Release fields pulumi-kubernetes itself replaces on (provider/pkg/provider/
# helm_release.go: forceNewFields ".name", ".namespace"); `chart` is added here.
RELEASE_REPLACE_ON = ["chart", "name", "namespace"]


def adapter_values(prometheus_url: str) -> dict[str, Any]:
    """prometheus-adapter values serving `celery_queue_length` as an external metric,
    namespaced so an HPA only sees the exporter of its own namespace."""
    parts = urlsplit(prometheus_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {
        "prometheus": {
            "url": f"{parts.scheme}://{parts.hostname}",
            "port": port,
            "path": parts.path.rstrip("/"),
        },
        "rules": {
            "default": False,
            "external": [
                {
                    "seriesQuery": f'{METRIC}{{queue!=""}}',
                    "resources": {"overrides": {"namespace": {"resource": "namespace"}}},
                    "name": {"as": METRIC},
                    # The adapter fills in the Go-template placeholders; the reduction is
                    # the dashboards' so the HPA scales on the backlog they show.
                    "metricsQuery": exporter_gauge("<<.Series>>", "<<.LabelMatchers>>"),
                }
            ],
        },
    }


def provider_first(cfg: AutoscalerConfig) -> bool:
    """Whether the provider is installed before the worker pools' autoscalers (KEDA mode:
    ScaledObjects need its CRDs) or after them (HPA mode: a switch from KEDA must delete
    the ScaledObjects while KEDA still runs to remove their finalizers)."""
    return cfg.mode == "keda"


def release_options(parent: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(
        parent=parent, replace_on_changes=RELEASE_REPLACE_ON, delete_before_replace=True
    )


class ExternalMetricsProvider(pulumi.ComponentResource):
    """A Helm release of prometheus-adapter or KEDA. Output: `release_name`.

    Both charts own the cluster-wide APIService `v1beta1.external.metrics.k8s.io`, and Helm
    refuses to install an object another release owns. The release is therefore ONE Pulumi
    resource whatever the mode (same URN), replaced when the chart, name or namespace
    changes, and replaced delete-first: pulumi-kubernetes itself would create the new
    release before deleting the old one. Switching modes in one `pulumi up` thus uninstalls
    the old provider before it installs the new. Which of provider and autoscalers goes
    first is the caller's (infra/__main__.py `provider_first`)."""

    release_name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: AutoscalerConfig,
        monitoring_namespace: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:ExternalMetricsProvider", resource_name, None, opts)
        if cfg.mode == "hpa":
            chart, version, repo = PROMETHEUS_ADAPTER_CHART
            namespace, values, create_ns = (
                monitoring_namespace,
                adapter_values(cfg.prometheus_url),
                False,
            )
        else:
            chart, version, repo = KEDA_CHART
            namespace, values, create_ns = "keda", {}, True
        release = k8s.helm.v3.Release(
            resource_name,
            name=chart,
            chart=chart,
            version=version,
            namespace=namespace,
            create_namespace=create_ns,
            repository_opts={"repo": repo},
            values=values,
            opts=release_options(self),
        )
        self.release_name = release.name.apply(lambda n: n or chart)
        self.register_outputs({"release_name": self.release_name})
