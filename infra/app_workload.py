"""Building blocks for the fleet's single-replica `fleet` apps (beat, exporter, Flower): one
Deployment of one container, and the Service that fronts one named container port."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from infra.config import FleetConfig
from infra.labels import selector
from infra.podspec import Container, TemplateAnnotations, Volume, pod_spec, template_metadata


def single_replica_deployment(
    resource_name: str,
    cfg: FleetConfig,
    name: str,
    namespace: pulumi.Input[str],
    labels: dict[str, str],
    container: Container,
    volumes: Sequence[Volume],
    opts: pulumi.ResourceOptions,
    *,
    strategy: k8s.apps.v1.DeploymentStrategyArgsDict | None = None,
    replicas: int = 1,
    anti_affinity: bool = False,
    template_annotations: TemplateAnnotations | None = None,
) -> k8s.apps.v1.Deployment:
    """`replicas: 1` (or `replicas`), selecting its own pods by the immutable subset of
    `labels`; placed by the stack's `pods`, replicas on different nodes with `anti_affinity`."""
    spec: k8s.apps.v1.DeploymentSpecArgsDict = {
        "replicas": replicas,
        "selector": {"match_labels": selector(labels)},
        "template": {
            "metadata": template_metadata(labels, cfg.pods, template_annotations),
            "spec": pod_spec(
                cfg, [container], volumes, anti_affinity=selector(labels) if anti_affinity else None
            ),
        },
    }
    if strategy is not None:
        spec["strategy"] = strategy
    return k8s.apps.v1.Deployment(
        resource_name,
        metadata={"name": name, "namespace": namespace, "labels": labels},
        spec=spec,
        opts=opts,
    )


def named_port_service(
    resource_name: str,
    name: str,
    namespace: pulumi.Input[str],
    labels: dict[str, str],
    port_name: str,
    port: int,
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Service:
    """A ClusterIP Service over the pods `labels` select, `port` -> the container port named
    `port_name` (a name, so the container may renumber it without touching the Service)."""
    return k8s.core.v1.Service(
        resource_name,
        metadata={"name": name, "namespace": namespace, "labels": labels},
        spec={
            "selector": selector(labels),
            "ports": [{"name": port_name, "port": port, "target_port": port_name}],
        },
        opts=opts,
    )
