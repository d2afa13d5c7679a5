"""The namespace every fleet object lives in: Pod Security `restricted`, a token-less
ServiceAccount and default-deny ingress (each workload then admits only what it needs)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.config import FleetConfig
from infra.labels import app_labels
from infra.names import EXPORTER_PORT, PART_OF, SERVICE_ACCOUNT, WORKER_METRICS_PORT


def namespace_selector(name: str) -> k8s.meta.v1.LabelSelectorArgsDict:
    # Set by the API server on every namespace since 1.22.
    return {"match_labels": {"kubernetes.io/metadata.name": name}}


class FleetNamespace(pulumi.ComponentResource):
    """Namespace + ServiceAccount + default-deny NetworkPolicy."""

    name: pulumi.Output[str]
    service_account: pulumi.Output[str]

    def __init__(
        self, resource_name: str, cfg: FleetConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("celery-fleet:k8s:FleetNamespace", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = app_labels(PART_OF, cfg.stack, "namespace")
        ns = k8s.core.v1.Namespace(
            resource_name,
            metadata={
                "name": cfg.namespace,
                "labels": {
                    **labels,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
            opts=child,
        )
        self.name = ns.metadata.name
        sa = k8s.core.v1.ServiceAccount(
            f"{resource_name}-sa",
            metadata={
                "name": SERVICE_ACCOUNT,
                "namespace": self.name,
                "labels": labels,
                # e.g. eks.amazonaws.com/role-arn (IAM roles for service accounts)
                **(
                    {"annotations": dict(cfg.service_account.annotations)}
                    if cfg.service_account.annotations
                    else {}
                ),
            },
            automount_service_account_token=False,
            opts=child,
        )
        self.service_account = sa.metadata.name
        k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-default-deny",
            metadata={"name": "default-deny-ingress", "namespace": self.name, "labels": labels},
            spec={"pod_selector": {}, "policy_types": ["Ingress"]},
            opts=child,
        )
        # Prometheus scrapes workers and the exporter directly (Flower has its own policy).
        k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-allow-scrape",
            metadata={"name": "allow-prometheus-scrape", "namespace": self.name, "labels": labels},
            spec={
                "pod_selector": {"match_labels": {"app.kubernetes.io/part-of": PART_OF}},
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        "from_": [
                            {"namespace_selector": namespace_selector(cfg.monitoring.namespace)}
                        ],
                        "ports": [
                            {"protocol": "TCP", "port": WORKER_METRICS_PORT},
                            {"protocol": "TCP", "port": EXPORTER_PORT},
                        ],
                    }
                ],
            },
            opts=child,
        )
        self.register_outputs({"name": self.name, "service_account": self.service_account})
