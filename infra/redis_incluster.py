"""Redis as a single-replica StatefulSet: AOF on a PVC, a generated password, and a
NetworkPolicy that admits only the fleet's own pods. For dev and small installs."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.config import InClusterRedisConfig
from infra.labels import FLEET_POD_SELECTOR, app_labels, selector
from infra.names import REDIS, REDIS_PASSWORD_KEY, REDIS_PORT, redis_host
from infra.podspec import (
    container_security_context,
    pod_security_context,
    resources,
    secret_env,
)

# Pause writes (pops and acks included) for longer than the sleep, so replies in flight
# are flushed before redis-server gets SIGTERM.
PRE_STOP_PAUSE_WRITES = ["sh", "-c", "redis-cli CLIENT PAUSE 10000 WRITE && sleep 2"]

# The official image's `redis` user; its entrypoint skips the chown/gosu step as non-root.
REDIS_UID = 999


class InClusterRedis(pulumi.ComponentResource):
    """Outputs: `broker_url` (secret) and `host`."""

    broker_url: pulumi.Output[str]
    host: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: InClusterRedisConfig,
        namespace: pulumi.Input[str],
        namespace_name: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:InClusterRedis", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = app_labels("redis", REDIS, "broker")
        password = random.RandomPassword(
            f"{resource_name}-password", length=40, special=False, opts=child
        )
        secret = k8s.core.v1.Secret(
            f"{resource_name}-password",
            metadata={"name": REDIS, "namespace": namespace, "labels": labels},
            type="Opaque",
            string_data={REDIS_PASSWORD_KEY: password.result},
            opts=child,
        )
        headless = k8s.core.v1.Service(
            f"{resource_name}-headless",
            metadata={"name": f"{REDIS}-headless", "namespace": namespace, "labels": labels},
            spec={
                "cluster_ip": "None",
                "selector": selector(labels),
                "ports": [{"name": "redis", "port": REDIS_PORT, "target_port": "redis"}],
            },
            opts=child,
        )
        k8s.core.v1.Service(
            resource_name,
            metadata={"name": REDIS, "namespace": namespace, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": selector(labels),
                "ports": [{"name": "redis", "port": REDIS_PORT, "target_port": "redis"}],
            },
            opts=child,
        )
        limit_mib = cfg.resources.memory_limit_mib
        # A broker must refuse writes rather than silently evict queued messages; keep
        # maxmemory under the container limit so Redis says OOM before the kernel does.
        args = [
            "--port", str(REDIS_PORT),
            "--dir", "/data",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--maxmemory", f"{limit_mib * 3 // 4}mb",
            "--maxmemory-policy", "noeviction",
            # Expanded by the kubelet; Redis rewrites its process title, hiding it from ps.
            "--requirepass", "$(REDIS_PASSWORD)",
        ]  # fmt: skip
        password_env = [
            secret_env("REDIS_PASSWORD", REDIS, REDIS_PASSWORD_KEY),
            # redis-cli reads its password from here, so probes never put it on a command line.
            secret_env("REDISCLI_AUTH", REDIS, REDIS_PASSWORD_KEY),
        ]
        volume_claim: k8s.core.v1.PersistentVolumeClaimSpecArgsDict = {
            "access_modes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": cfg.storage_size}},
        }
        if cfg.storage_class:
            volume_claim["storage_class_name"] = cfg.storage_class
        k8s.apps.v1.StatefulSet(
            resource_name,
            metadata={"name": REDIS, "namespace": namespace, "labels": labels},
            spec={
                "service_name": headless.metadata.name,
                "replicas": 1,
                "selector": {"match_labels": selector(labels)},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automount_service_account_token": False,
                        "enable_service_links": False,
                        "security_context": pod_security_context(REDIS_UID),
                        "termination_grace_period_seconds": 60,
                        "containers": [
                            {
                                "name": "redis",
                                "image": cfg.image,
                                "command": ["redis-server"],
                                "args": args,
                                "env": password_env,
                                "ports": [{"name": "redis", "container_port": REDIS_PORT}],
                                "resources": resources(cfg.resources),
                                "security_context": container_security_context(REDIS_UID),
                                "volume_mounts": [{"name": "data", "mount_path": "/data"}],
                                # Ready only once the AOF is loaded (PING answers LOADING before).
                                "readiness_probe": {
                                    "exec_": {
                                        "command": ["sh", "-c", "redis-cli ping | grep -q PONG"]
                                    },
                                    "period_seconds": 5,
                                    "timeout_seconds": 3,
                                },
                                # A shutdown drops replies of the commands it interrupts: pause
                                # writes first, so in-flight pops and acks finish and fewer
                                # messages wait for the dead-owner restore.
                                "lifecycle": {
                                    "pre_stop": {
                                        "exec_": {"command": PRE_STOP_PAUSE_WRITES},
                                    },
                                },
                                "liveness_probe": {
                                    "tcp_socket": {"port": "redis"},
                                    "initial_delay_seconds": 30,
                                    "period_seconds": 10,
                                    "failure_threshold": 6,
                                },
                            }
                        ],
                    },
                },
                "volume_claim_templates": [
                    {"metadata": {"name": "data", "labels": labels}, "spec": volume_claim}
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secret]),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{resource_name}-ingress",
            metadata={"name": REDIS, "namespace": namespace, "labels": labels},
            spec={
                "pod_selector": {"match_labels": selector(labels)},
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        "from_": [{"pod_selector": {"match_labels": FLEET_POD_SELECTOR}}],
                        "ports": [{"protocol": "TCP", "port": REDIS_PORT}],
                    }
                ],
            },
            opts=child,
        )
        self.host = pulumi.Output.from_input(redis_host(namespace_name))
        self.broker_url = pulumi.Output.secret(
            pulumi.Output.concat("redis://:", password.result, "@", self.host, f":{REDIS_PORT}/0")
        )
        self.register_outputs({"host": self.host, "broker_url": self.broker_url})
