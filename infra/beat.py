"""Celery beat: exactly one replica, replaced with Recreate, because two running beats
would send every periodic task twice. No autoscaler, no PDB (one pod, nothing to budget)."""

from __future__ import annotations

import pulumi

from infra.app_workload import single_replica_deployment
from infra.config import FleetConfig, Resources
from infra.labels import app_labels
from infra.names import BEAT
from infra.podspec import app_container, empty_dir, env

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
        state_vol, state_mount = empty_dir("schedule", SCHEDULE_DIR, "16Mi")
        tmp_vol, tmp_mount = empty_dir("tmp", "/tmp")
        container = app_container(
            cfg,
            "beat",
            ["beat"],
            BEAT_RESOURCES,
            extra_env=[env("FLEET_BEAT_SCHEDULE_FILE", SCHEDULE_FILE)],
            mounts=[state_mount, tmp_mount],
        )
        deployment = single_replica_deployment(
            resource_name,
            BEAT,
            namespace,
            labels,
            container,
            [state_vol, tmp_vol],
            pulumi.ResourceOptions(parent=self),
            # Recreate: the old pod is gone before the new one starts, never two at once.
            strategy={"type": "Recreate"},
        )
        self.deployment_name = deployment.metadata.name
        self.register_outputs({"deployment_name": self.deployment_name})
