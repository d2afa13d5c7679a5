"""Pod and container building blocks every fleet workload shares: the restricted security
context, writable emptyDirs on a read-only root, resources and secret-backed env."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.config import FleetConfig, PodSettings, Resources
from infra.names import (
    APP_SECRET,
    BROKER_SECRET,
    BROKER_URL_KEY,
    SERVICE_ACCOUNT,
    SMTP_PASSWORD_KEY,
)
from infra.results_config import ExternalResults, PostgresResults, ResultsConfig
from infra.results_names import RESULTS_SECRET, RESULTS_URL_KEY

APP_UID = 10001

# Pod template annotation holding a digest of the credentials the pods read from Secrets at
# start: a rotated password changes it, and the Deployment rolls its pods onto the new one.
SECRETS_CHECKSUM_ANNOTATION = "celery-fleet/secrets-checksum"

Container = k8s.core.v1.ContainerArgsDict
EnvVar = k8s.core.v1.EnvVarArgsDict
Volume = k8s.core.v1.VolumeArgsDict
VolumeMount = k8s.core.v1.VolumeMountArgsDict
PodSpec = k8s.core.v1.PodSpecArgsDict


def container_security_context(uid: int = APP_UID) -> k8s.core.v1.SecurityContextArgsDict:
    """Pod Security Standard `restricted`, plus a read-only root filesystem."""
    return {
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": uid,
        "read_only_root_filesystem": True,
        "allow_privilege_escalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def pod_security_context(uid: int = APP_UID) -> k8s.core.v1.PodSecurityContextArgsDict:
    return {
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": uid,
        "fs_group": uid,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def resources(r: Resources) -> k8s.core.v1.ResourceRequirementsArgsDict:
    limits = {"memory": r.memory_limit}
    if r.cpu_limit:
        limits["cpu"] = r.cpu_limit
    return {"requests": {"cpu": r.cpu_request, "memory": r.memory_request}, "limits": limits}


def empty_dir(name: str, path: str, size: str = "64Mi") -> tuple[Volume, VolumeMount]:
    """A writable emptyDir, bounded so a runaway writer cannot fill the node's disk."""
    return (
        {"name": name, "empty_dir": {"size_limit": size}},
        {"name": name, "mount_path": path},
    )


def env(name: str, value: str) -> EnvVar:
    return {"name": name, "value": value}


def secret_env(name: str, secret: str, key: str, optional: bool = False) -> EnvVar:
    ref: k8s.core.v1.SecretKeySelectorArgsDict = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "value_from": {"secret_key_ref": ref}}


def app_env(cfg: FleetConfig) -> list[EnvVar]:
    """What every `fleet` process reads: the broker URL from the Secret, never a literal."""
    result = [
        secret_env("CELERY_BROKER_URL", BROKER_SECRET, BROKER_URL_KEY),
        env("FLEET_LOG_LEVEL", cfg.log_level),
        env("FLEET_LOG_FORMAT", "json"),
    ]
    if cfg.secrets.smtp_password is not None:
        result.append(secret_env("FLEET_SMTP_PASSWORD", APP_SECRET, SMTP_PASSWORD_KEY))
    result.extend(result_backend_env(cfg.results))
    return result


def pod_spec(
    cfg: FleetConfig,
    containers: Sequence[Container],
    volumes: Sequence[Volume],
    *,
    grace_seconds: int = 30,
    pods: PodSettings | None = None,
    anti_affinity: Mapping[str, str] | None = None,
) -> PodSpec:
    """The fleet's pod spec, placed by `pods` (the stack's `pods` by default). With
    `anti_affinity` (a pod selector), replicas prefer different nodes unless the stack
    gives an affinity of its own."""
    placement = cfg.pods if pods is None else pods
    spec: PodSpec = {
        "service_account_name": SERVICE_ACCOUNT,
        # No workload here talks to the Kubernetes API.
        "automount_service_account_token": False,
        "security_context": pod_security_context(),
        "termination_grace_period_seconds": grace_seconds,
        "enable_service_links": False,
        "containers": list(containers),
        "volumes": list(volumes),
    }
    if placement.node_selector:
        spec["node_selector"] = dict(placement.node_selector)
    if placement.tolerations:
        spec["tolerations"] = [t.manifest() for t in placement.tolerations]  # type: ignore[misc]
    if placement.priority_class_name:
        spec["priority_class_name"] = placement.priority_class_name
    affinity: dict[str, Any] = placement.affinity.manifest() if placement.affinity else {}
    if anti_affinity is not None and "podAntiAffinity" not in affinity:
        affinity["podAntiAffinity"] = {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": dict(anti_affinity)},
                    },
                }
            ]
        }
    if affinity:
        spec["affinity"] = affinity  # type: ignore[typeddict-item]
    return spec


TemplateAnnotations = Mapping[str, pulumi.Input[str]]


def template_metadata(
    labels: Mapping[str, str],
    pods: PodSettings,
    annotations: TemplateAnnotations | None = None,
) -> k8s.meta.v1.ObjectMetaArgsDict:
    """A pod template's metadata: the stack's pod annotations, then the program's own."""
    merged: dict[str, pulumi.Input[str]] = {**(pods.annotations or {}), **(annotations or {})}
    meta: k8s.meta.v1.ObjectMetaArgsDict = {"labels": dict(labels)}
    if merged:
        meta["annotations"] = merged
    return meta


def secrets_checksum(*values: pulumi.Input[str] | None) -> pulumi.Output[str]:
    """A digest of secret values for SECRETS_CHECKSUM_ANNOTATION. Not secret itself: a
    SHA-256 of random passwords reveals nothing, and a visible change in the preview shows
    that the pods will roll."""
    present = [pulumi.Output.from_input(v) for v in values if v is not None]

    def digest(parts: list[str]) -> str:
        h = hashlib.sha256()
        for part in parts:
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()[:32]

    return pulumi.Output.unsecret(pulumi.Output.all(*present).apply(digest))


def app_container(
    cfg: FleetConfig,
    name: str,
    args: Sequence[str],
    res: Resources,
    *,
    extra_env: Sequence[EnvVar] = (),
    mounts: Sequence[VolumeMount] = (),
    ports: Sequence[k8s.core.v1.ContainerPortArgsDict] = (),
) -> Container:
    container: Container = {
        "name": name,
        "image": cfg.image,
        "image_pull_policy": cfg.image_pull_policy,
        "command": ["fleet"],
        "args": list(args),
        "env": [*app_env(cfg), *extra_env],
        "resources": resources(res),
        "security_context": container_security_context(),
        "volume_mounts": list(mounts),
    }
    if ports:
        container["ports"] = list(ports)
    return container


def result_backend_env(results: ResultsConfig) -> list[EnvVar]:
    """CELERY_RESULT_BACKEND from a Secret (never a literal), or nothing in `redis` mode."""
    if isinstance(results, ExternalResults):
        return [secret_env("CELERY_RESULT_BACKEND", results.secret_name, results.secret_key)]
    if isinstance(results, PostgresResults):
        return [secret_env("CELERY_RESULT_BACKEND", RESULTS_SECRET, RESULTS_URL_KEY)]
    return []
