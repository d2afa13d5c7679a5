"""Flower behind basic auth, with an optional Ingress. Flower serves /metrics and
/healthcheck WITHOUT auth, so its port admits only the ingress controller and monitoring
namespaces, and the Ingress sends those two paths to a Service with no endpoints."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.app_workload import named_port_service, single_replica_deployment
from infra.config import FleetConfig, Resources
from infra.labels import app_labels, selector
from infra.names import FLOWER, FLOWER_AUTH_KEY, FLOWER_PORT, FLOWER_SECRET
from infra.podspec import (
    SECRETS_CHECKSUM_ANNOTATION,
    TemplateAnnotations,
    app_container,
    empty_dir,
    env,
    secret_env,
    secrets_checksum,
)
from infra.security import namespace_selector

FLOWER_RESOURCES = Resources("100m", "192Mi", "384Mi")
UNAUTHENTICATED_PATHS = ("/metrics", "/healthcheck")


class Flower(pulumi.ComponentResource):
    """Outputs: `service_name`, `url` (None without Ingress), `labels`."""

    service_name: pulumi.Output[str]
    url: pulumi.Output[str] | None

    def __init__(
        self,
        resource_name: str,
        cfg: FleetConfig,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        *,
        template_annotations: TemplateAnnotations | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:Flower", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.labels = app_labels("celery-flower", FLOWER, "flower")
        password = cfg.secrets.flower_password
        if password is None:
            password = random.RandomPassword(
                f"{resource_name}-password", length=32, special=False, opts=child
            ).result
        auth: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.concat(cfg.flower.user, ":", password)
        )
        secret = k8s.core.v1.Secret(
            f"{resource_name}-auth",
            metadata={"name": FLOWER_SECRET, "namespace": namespace, "labels": self.labels},
            type="Opaque",
            string_data={FLOWER_AUTH_KEY: auth},
            opts=child,
        )
        tmp_vol, tmp_mount = empty_dir("tmp", "/tmp")
        container = app_container(
            cfg,
            "flower",
            ["flower"],
            FLOWER_RESOURCES,
            extra_env=[
                secret_env("FLEET_FLOWER_BASIC_AUTH", FLOWER_SECRET, FLOWER_AUTH_KEY),
                env("FLEET_FLOWER_PORT", str(FLOWER_PORT)),
            ],
            mounts=[tmp_mount],
            ports=[{"name": "http", "container_port": FLOWER_PORT}],
        )
        container["readiness_probe"] = {
            "http_get": {"path": "/healthcheck", "port": "http"},
            "period_seconds": 10,
        }
        container["liveness_probe"] = {
            "http_get": {"path": "/healthcheck", "port": "http"},
            "initial_delay_seconds": 30,
            "period_seconds": 30,
            "timeout_seconds": 10,
        }
        single_replica_deployment(
            resource_name,
            cfg,
            FLOWER,
            namespace,
            self.labels,
            container,
            [tmp_vol],
            pulumi.ResourceOptions(parent=self, depends_on=[secret]),
            # Its own credentials too: a new Flower password rolls the pod.
            template_annotations={
                **(template_annotations or {}),
                SECRETS_CHECKSUM_ANNOTATION: secrets_checksum(
                    (template_annotations or {}).get(SECRETS_CHECKSUM_ANNOTATION), auth
                ),
            },
        )
        service = named_port_service(
            resource_name, FLOWER, namespace, self.labels, "http", FLOWER_PORT, child
        )
        self.service_name = service.metadata.name
        k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-ingress",
            metadata={"name": FLOWER, "namespace": namespace, "labels": self.labels},
            spec={
                "pod_selector": {"match_labels": selector(self.labels)},
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        "from_": [
                            {
                                "namespace_selector": namespace_selector(
                                    cfg.monitoring.ingress_namespace
                                )
                            },
                            {"namespace_selector": namespace_selector(cfg.monitoring.namespace)},
                        ],
                        "ports": [{"protocol": "TCP", "port": FLOWER_PORT}],
                    }
                ],
            },
            opts=child,
        )
        self.url = None
        if cfg.features.flower_ingress and cfg.flower.ingress_host:
            self.url = self._ingress(resource_name, cfg, namespace, cfg.flower.ingress_host)
        self.register_outputs({"service_name": self.service_name, "url": self.url})

    def _ingress(
        self, resource_name: str, cfg: FleetConfig, namespace: pulumi.Input[str], host: str
    ) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        # A Service that selects no pod: the controller answers 503 for these paths, so the
        # unauthenticated endpoints never leave the cluster through the Ingress.
        blocked = k8s.core.v1.Service(
            f"{resource_name}-blocked",
            metadata={"name": f"{FLOWER}-blocked", "namespace": namespace, "labels": self.labels},
            spec={
                "selector": {"celery-fleet/no-endpoints": "true"},
                "ports": [{"name": "http", "port": FLOWER_PORT}],
            },
            opts=child,
        )
        paths: list[k8s.networking.v1.HTTPIngressPathArgsDict] = [
            {
                "path": path,
                "path_type": "Exact",
                "backend": {"service": {"name": blocked.metadata.name, "port": {"name": "http"}}},
            }
            for path in UNAUTHENTICATED_PATHS
        ]
        paths.append(
            {
                "path": "/",
                "path_type": "Prefix",
                "backend": {"service": {"name": self.service_name, "port": {"name": "http"}}},
            }
        )
        spec: k8s.networking.v1.IngressSpecArgsDict = {
            "ingress_class_name": cfg.flower.ingress_class_name,
            "rules": [{"host": host, "http": {"paths": paths}}],
        }
        scheme = "http"
        if cfg.flower.tls_secret_name:
            spec["tls"] = [{"hosts": [host], "secret_name": cfg.flower.tls_secret_name}]
            scheme = "https"
        metadata: k8s.meta.v1.ObjectMetaArgsDict = {
            "name": FLOWER,
            "namespace": namespace,
            "labels": self.labels,
        }
        if cfg.flower.ingress_annotations:
            metadata["annotations"] = dict(cfg.flower.ingress_annotations)
        k8s.networking.v1.Ingress(
            resource_name,
            metadata=metadata,
            spec=spec,
            opts=child,
        )
        return pulumi.Output.from_input(f"{scheme}://{host}/")
