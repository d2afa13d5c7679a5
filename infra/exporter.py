"""The queue-length exporter (`fleet exporter`): one replica is enough, it only reads list
lengths; its Service is what the ServiceMonitor and the autoscalers' metric depend on."""

from __future__ import annotations

import pulumi

from infra.app_workload import named_port_service, single_replica_deployment
from infra.config import FleetConfig, Resources
from infra.labels import app_labels
from infra.names import EXPORTER, EXPORTER_PORT
from infra.podspec import TemplateAnnotations, app_container, empty_dir

EXPORTER_RESOURCES = Resources("50m", "96Mi", "192Mi")


class QueueExporter(pulumi.ComponentResource):
    """Outputs: `service_name`, `labels` (for monitors)."""

    service_name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: FleetConfig,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        *,
        template_annotations: TemplateAnnotations | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:QueueExporter", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.labels = app_labels("celery-exporter", EXPORTER, "exporter")
        tmp_vol, tmp_mount = empty_dir("tmp", "/tmp")
        container = app_container(
            cfg,
            "exporter",
            ["exporter", "--port", str(EXPORTER_PORT)],
            EXPORTER_RESOURCES,
            mounts=[tmp_mount],
            ports=[{"name": "metrics", "container_port": EXPORTER_PORT}],
        )
        container["readiness_probe"] = {
            "http_get": {"path": "/healthz", "port": "metrics"},
            "period_seconds": 10,
            "timeout_seconds": 5,
        }
        container["liveness_probe"] = {
            "http_get": {"path": "/healthz", "port": "metrics"},
            "initial_delay_seconds": 20,
            "period_seconds": 30,
            "timeout_seconds": 10,
            "failure_threshold": 3,
        }
        single_replica_deployment(
            resource_name,
            cfg,
            EXPORTER,
            namespace,
            self.labels,
            container,
            [tmp_vol],
            child,
            template_annotations=template_annotations,
        )
        service = named_port_service(
            resource_name, EXPORTER, namespace, self.labels, "metrics", EXPORTER_PORT, child
        )
        self.service_name = service.metadata.name
        self.register_outputs({"service_name": self.service_name})
