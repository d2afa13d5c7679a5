"""HPA mode only: a Job that raises every worker Deployment sitting at 0 replicas to its
floor, once the HPAs exist, and leaves every other count as it is.

Why: KEDA scales idle pools to zero; the HPA controller never scales a target at zero
("ScalingDisabled"). After a switch from KEDA, such a pool would stay without workers.
The Job (`python -m service.ops.scale_floor`, in the app image) runs after the HPAs replaced
the ScaledObjects (so KEDA can no longer scale it back) and is created anew on each switch
to HPA mode (it does not exist in KEDA mode). Its ServiceAccount may only get and patch the
`scale` of the worker Deployments, nothing else."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

from infra.config import FleetConfig, Resources
from infra.labels import app_labels
from infra.podspec import app_container, empty_dir, pod_spec

HANDOVER = "celery-autoscaler-handover"
HANDOVER_RESOURCES = Resources("20m", "48Mi", "96Mi")
MODULE = "service.ops.scale_floor"


def floor_args(floors: Mapping[str, int]) -> list[str]:
    return [f"{name}={replicas}" for name, replicas in sorted(floors.items())]


class HpaHandover(pulumi.ComponentResource):
    """ServiceAccount, Role, RoleBinding and the Job. `floors`: Deployment -> replicas."""

    def __init__(
        self,
        resource_name: str,
        cfg: FleetConfig,
        namespace: pulumi.Input[str],
        floors: Mapping[str, int],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:HpaHandover", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = app_labels("celery-autoscaler-handover", HANDOVER, "autoscaler-handover")
        meta: k8s.meta.v1.ObjectMetaArgsDict = {
            "name": HANDOVER,
            "namespace": namespace,
            "labels": labels,
        }
        account = k8s.core.v1.ServiceAccount(
            f"{resource_name}-sa",
            metadata=meta,
            # Mounted only where the Job's pod asks for it.
            automount_service_account_token=False,
            opts=child,
        )
        role = k8s.rbac.v1.Role(
            f"{resource_name}-role",
            metadata=meta,
            rules=[
                {
                    "api_groups": ["apps"],
                    "resources": ["deployments/scale"],
                    "resource_names": sorted(floors),
                    "verbs": ["get", "patch"],
                }
            ],
            opts=child,
        )
        binding = k8s.rbac.v1.RoleBinding(
            f"{resource_name}-binding",
            metadata=meta,
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "Role", "name": HANDOVER},
            subjects=[{"kind": "ServiceAccount", "name": HANDOVER, "namespace": namespace}],
            opts=child,
        )
        tmp_vol, tmp_mount = empty_dir("tmp", "/tmp", "16Mi")
        container = app_container(cfg, "scale-floor", [], HANDOVER_RESOURCES, mounts=[tmp_mount])
        container["command"] = ["python", "-m", MODULE]
        container["args"] = floor_args(floors)
        container["env"] = []  # it needs no broker, no settings
        spec = pod_spec(cfg, [container], [tmp_vol])
        spec["service_account_name"] = HANDOVER
        spec["automount_service_account_token"] = True
        spec["restart_policy"] = "OnFailure"
        job_spec: k8s.batch.v1.JobSpecArgsDict = {
            "backoff_limit": 4,
            "active_deadline_seconds": 300,
            "template": {"metadata": {"labels": labels}, "spec": spec},
        }
        k8s.batch.v1.Job(
            resource_name,
            metadata=meta,
            spec=job_spec,
            # A changed Job (new image, new floors) runs again: delete the old one first, as
            # a Job's name is fixed and its template immutable.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[account, role, binding], delete_before_replace=True
            ),
        )
        self.register_outputs({})
