"""Celery beat: an active beat and a standby, on different nodes where the cluster allows.

Which one sends is decided in Redis, not by the Deployment: celery-redbeat keeps the schedule
there and lets only the holder of its lock run it (service.config.celeryconfig). The standby
waits on the lock and takes over within FLEET_BEAT_LOCK_TIMEOUT when the active pod dies
without releasing it (node loss); a graceful stop releases it at once. The schedule (each
entry's last run) survives both, so nothing is sent twice and nothing is skipped."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.app_workload import single_replica_deployment
from infra.config import FleetConfig, Resources
from infra.labels import app_labels, selector
from infra.names import BEAT
from infra.podspec import TemplateAnnotations, app_container, empty_dir

BEAT_RESOURCES = Resources("50m", "128Mi", "256Mi")
# The active beat and one standby waiting on the lock.
BEAT_REPLICAS = 2


class Beat(pulumi.ComponentResource):
    """Output: `deployment_name`."""

    deployment_name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: FleetConfig,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        *,
        template_annotations: TemplateAnnotations | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:Beat", resource_name, None, opts)
        labels = app_labels("celery-beat", BEAT, "beat")
        tmp_vol, tmp_mount = empty_dir("tmp", "/tmp")
        container = app_container(cfg, "beat", ["beat"], BEAT_RESOURCES, mounts=[tmp_mount])
        deployment = single_replica_deployment(
            resource_name,
            cfg,
            BEAT,
            namespace,
            labels,
            container,
            [tmp_vol],
            pulumi.ResourceOptions(parent=self),
            replicas=BEAT_REPLICAS,
            # Two at once is safe (the lock decides who sends): roll one pod at a time.
            strategy={
                "type": "RollingUpdate",
                "rolling_update": {"max_surge": 0, "max_unavailable": 1},
            },
            # The standby is only worth it on another node.
            anti_affinity=True,
            template_annotations=template_annotations,
        )
        k8s.policy.v1.PodDisruptionBudget(
            resource_name,
            metadata={"name": BEAT, "namespace": namespace, "labels": labels},
            spec={"max_unavailable": 1, "selector": {"match_labels": selector(labels)}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.deployment_name = deployment.metadata.name
        self.register_outputs({"deployment_name": self.deployment_name})
