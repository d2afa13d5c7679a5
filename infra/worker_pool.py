"""One Celery worker pool per catalog queue: Deployment, PodDisruptionBudget, autoscaler."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.autoscaler import QueueAutoscaler
from infra.config import FleetConfig, QueueConfig
from infra.labels import selector, worker_labels
from infra.names import WORKER_METRICS_PORT
from infra.podspec import (
    TemplateAnnotations,
    app_container,
    empty_dir,
    env,
    pod_spec,
    template_metadata,
)
from service.catalog.naming import worker_deployment_name, worker_pdb_name

METRICS_DIR = "/var/run/fleet-metrics"
HEARTBEAT_DIR = "/var/run/fleet-heartbeat"
HEARTBEAT_FILE = f"{HEARTBEAT_DIR}/worker.beat"
# The liveness probe: a standard-library file-age check of the heartbeat, no application
# import (`fleet probe` costs ~2 s and ~70 MB per run; this ~30 ms and ~10 MB).
LIVENESS_COMMAND = ["python", "-m", "service.liveness"]


def worker_args(queue: QueueConfig) -> list[str]:
    """`fleet worker` arguments. Only the queue: the worker takes its concurrency, prefetch
    and time limits from the catalog in the image (service.worker.hooks), the one route
    for every worker; this program derives the grace period and the per-child memory from
    the same catalog entry, and passes what only it knows (the pod's memory) as env."""
    return ["worker", "-Q", queue.name, "--hostname", f"{queue.name}@%h"]


class WorkerPool(pulumi.ComponentResource):
    """Outputs: `deployment_name`, `grace_seconds`."""

    deployment_name: pulumi.Output[str]
    grace_seconds: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        queue: QueueConfig,
        cfg: FleetConfig,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        *,
        template_annotations: TemplateAnnotations | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:WorkerPool", resource_name, None, opts)
        pods = queue.pods.over(cfg.pods)
        name = worker_deployment_name(queue.name)
        labels = worker_labels(queue.name, name)
        metrics_vol, metrics_mount = empty_dir("metrics", METRICS_DIR)
        beat_vol, beat_mount = empty_dir("heartbeat", HEARTBEAT_DIR, "1Mi")
        tmp_vol, tmp_mount = empty_dir("tmp", "/tmp", "256Mi")
        container = app_container(
            cfg,
            "worker",
            worker_args(queue),
            queue.resources,
            extra_env=[
                env("FLEET_METRICS_DIR", METRICS_DIR),
                env("FLEET_HEARTBEAT_FILE", HEARTBEAT_FILE),
                env("FLEET_METRICS_PORT", str(WORKER_METRICS_PORT)),
                env("FLEET_MAX_MEMORY_PER_CHILD_KB", str(queue.max_memory_per_child_kb)),
                # Flower's task views are built from task events (3 PUBLISH per task).
                env("FLEET_TASK_EVENTS", "true" if cfg.features.flower else "false"),
            ],
            mounts=[metrics_mount, beat_mount, tmp_mount],
            ports=[{"name": "metrics", "container_port": WORKER_METRICS_PORT}],
        )
        probe: k8s.core.v1.ProbeArgsDict = {
            "exec_": {"command": LIVENESS_COMMAND},
            "period_seconds": 30,
            "timeout_seconds": 10,
            "failure_threshold": 3,
        }
        container["liveness_probe"] = probe
        # Boot (imports, broker connect) may take a while; do not let liveness kill it early.
        container["startup_probe"] = {**probe, "period_seconds": 5, "failure_threshold": 36}
        spec = pod_spec(
            cfg,
            [container],
            [metrics_vol, beat_vol, tmp_vol],
            # SIGTERM starts a warm shutdown; the running task may still need up to its hard
            # limit, so SIGKILL must come later than that.
            grace_seconds=queue.termination_grace_seconds,
            pods=pods,
        )
        # Spread a pool over zones so losing one zone never takes a whole queue offline; a
        # preference unless the stack makes it strict (`pods.topologySpread`).
        spec["topology_spread_constraints"] = [
            {
                "max_skew": 1,
                "topology_key": "topology.kubernetes.io/zone",
                "when_unsatisfiable": pods.spread,
                "label_selector": {"match_labels": selector(labels)},
            }
        ]
        deployment = k8s.apps.v1.Deployment(
            resource_name,
            metadata={"name": name, "namespace": namespace, "labels": labels},
            spec={
                "replicas": queue.min_replicas,
                "selector": {"match_labels": selector(labels)},
                # Never drop below the current count while rolling: tasks keep flowing.
                "strategy": {
                    "type": "RollingUpdate",
                    "rolling_update": {"max_surge": "25%", "max_unavailable": 0},
                },
                "template": {
                    "metadata": template_metadata(labels, pods, template_annotations),
                    "spec": spec,
                },
            },
            # The autoscaler owns the replica count after creation.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["spec.replicas"]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            resource_name,
            metadata={
                "name": worker_pdb_name(queue.name),
                "namespace": namespace,
                "labels": labels,
            },
            spec={"max_unavailable": 1, "selector": {"match_labels": selector(labels)}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.deployment_name = deployment.metadata.name
        self.autoscaler = QueueAutoscaler(
            resource_name,
            queue,
            cfg.autoscaler,
            self.deployment_name,
            namespace,
            cfg.namespace,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.grace_seconds = pulumi.Output.from_input(queue.termination_grace_seconds)
        self.register_outputs(
            {"deployment_name": self.deployment_name, "grace_seconds": self.grace_seconds}
        )
