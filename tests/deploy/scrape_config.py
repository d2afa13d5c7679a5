"""A Prometheus configured the way the Prometheus Operator would configure it from the
rendered PodMonitors, ServiceMonitors and PrometheusRule: the same pods, ports (by name),
paths and intervals; `podTargetLabels` copied onto the series."""

from __future__ import annotations

import re
from typing import Any

import yaml
from pod_cluster import resolve_port
from rendered_stack import RenderedStack, selects


def label_name(key: str) -> str:
    """The operator sanitises label keys into Prometheus label names."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def scrape_configs(stack: RenderedStack) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    for monitor in stack.by_kind.get("PodMonitor", []):
        spec = monitor["spec"]
        selector = spec["selector"].get("matchLabels", {})
        pods = [p for p in stack.pods if selects(selector, p.labels)]
        for endpoint in spec["podMetricsEndpoints"]:
            targets = []
            for pod in pods:
                for container in pod.containers():
                    port = resolve_port(container, endpoint["port"])
                    labels = {"pod": pod.name, "namespace": stack.namespace}
                    for key in spec.get("podTargetLabels", []):
                        if key in pod.labels:
                            labels[label_name(key)] = pod.labels[key]
                    targets.append({"targets": [f"{pod.ip}:{port}"], "labels": labels})
            jobs.append(job(monitor, endpoint, targets))
    for monitor in stack.by_kind.get("ServiceMonitor", []):
        spec = monitor["spec"]
        services = [
            s for s in stack.services
            if selects(spec["selector"].get("matchLabels", {}), s["metadata"].get("labels", {}))
        ]  # fmt: skip
        for endpoint in spec["endpoints"]:
            targets = []
            for service in services:
                svc_port = next(
                    p for p in service["spec"]["ports"] if p.get("name") == endpoint["port"]
                )
                pods = [p for p in stack.pods if selects(service["spec"]["selector"], p.labels)]
                for pod in pods:
                    for container in pod.containers():
                        port = resolve_port(container, svc_port.get("targetPort", svc_port["port"]))
                        labels = {"pod": pod.name, "namespace": stack.namespace,
                                  "service": service["metadata"]["name"]}  # fmt: skip
                        targets.append({"targets": [f"{pod.ip}:{port}"], "labels": labels})
            jobs.append(job(monitor, endpoint, targets))
    return jobs


def job(monitor: dict[str, Any], endpoint: dict[str, Any], targets: list[Any]) -> dict[str, Any]:
    kind = monitor["kind"].lower()
    return {
        "job_name": f"{kind}/{monitor['metadata']['name']}/{endpoint['port']}",
        "scrape_interval": endpoint.get("interval", "30s"),
        "metrics_path": endpoint.get("path", "/metrics"),
        "static_configs": targets,
    }


def prometheus_yaml(stack: RenderedStack, rules_file: str) -> str:
    config = {
        "global": {"evaluation_interval": "5s"},
        "rule_files": [rules_file],
        "scrape_configs": scrape_configs(stack),
    }
    return yaml.safe_dump(config, sort_keys=False)


def rules_yaml(stack: RenderedStack) -> tuple[str, list[str]]:
    """The PrometheusRule's groups as a rule file, and the group names."""
    groups = [g for rule in stack.by_kind.get("PrometheusRule", []) for g in rule["spec"]["groups"]]
    return yaml.safe_dump({"groups": groups}, sort_keys=False), [g["name"] for g in groups]
