"""Celery beat: exactly one replica, replaced with Recreate, because two running beats
would send every periodic task twice. No autoscaler, no PDB (one pod, nothing to budget)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.config import FleetConfig, Resources
from infra.labels import app_labels, selector
from infra.names import BEAT
from infra.podspec import app_container, env, pod_spec, scratch

SCHEDULE_DIR = "/var/run/fleet-beat"
SCHEDULE_FILE = f"{SCHEDULE_DIR}/celerybeat-schedule"
BEAT_RESOURCES = Resources("50m", "128Mi", "256Mi")


class Beat(pulumi.ComponentResource):
    """Output: `deployment_name`."""

    deployment_name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: FleetConfig,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:Beat", resource_name, None, opts)
        labels = app_labels("celery-beat", BEAT, "beat")
        state_vol, state_mount = scratch("schedule", SCHEDULE_DIR, "16Mi")
        tmp_vol, tmp_mount = scratch("tmp", "/tmp")
        container = app_container(
            cfg,
            "beat",
            ["beat"],
            BEAT_RESOURCES,
            extra_env=[env("FLEET_BEAT_SCHEDULE_FILE", SCHEDULE_FILE)],
            mounts=[state_mount, tmp_mount],
        )
        deployment = k8s.apps.v1.Deployment(
            resource_name,
            metadata={"name": BEAT, "namespace": namespace, "labels": labels},
            spec={
                "replicas": 1,
                # Recreate: the old pod is gone before the new one starts, never two at once.
                "strategy": {"type": "Recreate"},
                "selector": {"match_labels": selector(labels)},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": pod_spec(cfg, [container], [state_vol, tmp_vol]),
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.deployment_name = deployment.metadata.name
        self.register_outputs({"deployment_name": self.deployment_name})
