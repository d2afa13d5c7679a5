"""Prometheus Operator objects (PodMonitors, ServiceMonitor, PrometheusRule) and Grafana
dashboard ConfigMaps for the kube-prometheus-stack sidecar."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.assets import load_dashboards, stack_rule_groups
from infra.config import FleetConfig
from infra.labels import app_labels
from infra.names import PART_OF, dashboard_configmap_name

MONITORING_API = "monitoring.coreos.com/v1"
SCRAPE_INTERVAL = "15s"


class Monitoring(pulumi.ComponentResource):
    """Outputs: `rule_groups` (count), `dashboards` (ConfigMap names)."""

    rule_groups: pulumi.Output[int]
    dashboards: pulumi.Output[list[str]]

    def __init__(
        self,
        resource_name: str,
        cfg: FleetConfig,
        namespace: pulumi.Input[str],
        exporter_labels: dict[str, str],
        flower_labels: dict[str, str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:Monitoring", resource_name, None, opts)
        self._cfg = cfg
        self._namespace = namespace
        self._labels = {
            **app_labels(PART_OF, cfg.stack, "monitoring"),
            "release": cfg.monitoring.release_label,
        }
        worker_selector = {
            "app.kubernetes.io/component": "worker",
            "app.kubernetes.io/part-of": PART_OF,
        }
        workers = {
            "selector": {"matchLabels": worker_selector},
            "podTargetLabels": ["celery-fleet/queue"],
            "podMetricsEndpoints": [
                {"port": "metrics", "path": "/metrics", "interval": SCRAPE_INTERVAL}
            ],
        }
        self._monitor("PodMonitor", f"{resource_name}-workers", "celery-workers", workers)
        exporter = {
            "selector": {"matchLabels": _instance(exporter_labels)},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": SCRAPE_INTERVAL}],
        }
        self._monitor("ServiceMonitor", f"{resource_name}-exporter", "celery-exporter", exporter)
        if flower_labels is not None:
            # Flower's /metrics needs no auth; the scrape reaches it on the pod network only.
            flower = {
                "selector": {"matchLabels": _instance(flower_labels)},
                "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
            }
            self._monitor("PodMonitor", f"{resource_name}-flower", "celery-flower", flower)
        # Rendered from this stack's resolved catalog: thresholds match its autoscalers.
        groups = stack_rule_groups(cfg.catalog)
        if groups:
            rules = {"groups": groups}
            self._monitor("PrometheusRule", f"{resource_name}-rules", "celery-fleet", rules)
        self.rule_groups = pulumi.Output.from_input(len(groups))
        names: list[str] = []
        if cfg.features.dashboards:
            for stem, text in load_dashboards().items():
                names.append(self._dashboard(resource_name, stem, text))
        self.dashboards = pulumi.Output.from_input(names)
        self.register_outputs({"rule_groups": self.rule_groups, "dashboards": self.dashboards})

    def _monitor(self, kind: str, resource_name: str, name: str, spec: dict[str, Any]) -> None:
        k8s.apiextensions.CustomResource(
            resource_name,
            api_version=MONITORING_API,
            kind=kind,
            metadata={"name": name, "namespace": self._namespace, "labels": self._labels},
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _dashboard(self, resource_name: str, stem: str, text: str) -> str:
        name = dashboard_configmap_name(stem)
        k8s.core.v1.ConfigMap(
            f"{resource_name}-{name}",
            metadata={
                "name": name,
                # The Grafana sidecar watches its own namespace by default.
                "namespace": self._cfg.monitoring.namespace,
                "labels": {**self._labels, "grafana_dashboard": "1"},
                "annotations": {"grafana_folder": "celery-fleet"},
            },
            data={f"{stem}.json": text},
            opts=pulumi.ResourceOptions(parent=self),
        )
        return name


def _instance(labels: dict[str, str]) -> dict[str, str]:
    return {"app.kubernetes.io/instance": labels["app.kubernetes.io/instance"]}
