"""Pure checks: `(resource_type, props) -> [violation message]`, empty when compliant."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from policy.database_checks import rds_encrypted_private_protected
from policy.pods import containers, get, kind_of, plain, pod_spec
from policy.prod import CONTEXT_CHECKS, Context

Props = Mapping[str, Any]
Check = Callable[[str, Props], list[str]]

SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|TOKEN|SECRET|BROKER_URL|RESULT_BACKEND|BASIC_AUTH|API_?KEY|CREDENTIAL",
    re.IGNORECASE,
)
# scheme://user:password@host or scheme://:password@host
URL_WITH_CREDENTIALS = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:[^@\s/]+@")
ENV_REFERENCE = re.compile(r"^\$\([A-Za-z_][A-Za-z0-9_]*\)$")
DANGEROUS_CAPS = {"ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "NET_RAW"}


def _truthy(value: Any) -> bool:
    value = plain(value)
    return value is True or (isinstance(value, str) and value.lower() == "true")


def no_privileged_or_root(resource_type: str, props: Props) -> list[str]:
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    out = [f"pod uses host {ns}" for ns in ("hostPID", "hostIPC", "hostNetwork")
           if _truthy(spec.get(ns))]  # fmt: skip
    pod_sc = get(spec, "securityContext") or {}
    for c in containers(spec):
        name = c.get("name", "?")
        sc = get(c, "securityContext") or {}
        if _truthy(sc.get("privileged")):
            out.append(f"container {name} is privileged")
        if _truthy(sc.get("allowPrivilegeEscalation")) or "allowPrivilegeEscalation" not in sc:
            out.append(f"container {name} must set allowPrivilegeEscalation: false")
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if plain(user) == 0:
            out.append(f"container {name} runs as root (runAsUser 0)")
        elif not _truthy(non_root):
            out.append(f"container {name} may run as root (set runAsNonRoot: true)")
        added = {str(plain(cap)).upper() for cap in get(sc, "capabilities", "add") or []}
        if added & DANGEROUS_CAPS:
            out.append(f"container {name} adds capabilities {sorted(added & DANGEROUS_CAPS)}")
    return out


def resources_set(resource_type: str, props: Props) -> list[str]:
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    out = []
    for c in containers(spec):
        name = c.get("name", "?")
        missing = [
            path
            for path in ("requests.cpu", "requests.memory", "limits.memory")
            if not get(c, "resources", *path.split("."))
        ]
        if missing:
            out.append(f"container {name} lacks resources {', '.join(missing)}")
    return out


def autoscaler_bounds(resource_type: str, props: Props) -> list[str]:
    kind = kind_of(resource_type)
    if kind == "HorizontalPodAutoscaler" and resource_type.startswith("kubernetes:autoscaling/"):
        lo, hi = get(props, "spec", "minReplicas"), get(props, "spec", "maxReplicas")
        lo = 1 if lo is None else lo
        floor = 1  # HPA scale-to-zero needs the HPAScaleToZero feature gate
    elif kind == "ScaledObject" and resource_type.startswith("kubernetes:keda.sh/"):
        lo, hi = get(props, "spec", "minReplicaCount"), get(props, "spec", "maxReplicaCount")
        lo, hi, floor = (0 if lo is None else lo), (100 if hi is None else hi), 0
    else:
        return []
    if not isinstance(lo, int | float) or not isinstance(hi, int | float):
        return []  # unknown during preview
    out = []
    if lo > hi:
        out.append(f"{kind} min replicas ({int(lo)}) > max replicas ({int(hi)})")
    if lo < floor:
        out.append(f"{kind} min replicas must be >= {floor}, got {int(lo)}")
    return out


def elasticache_encrypted_with_auth(resource_type: str, props: Props) -> list[str]:
    if resource_type == "aws:elasticache/cluster:Cluster":
        engine = str(plain(props.get("engine", ""))).lower()
        if engine in ("redis", "valkey") and not props.get("replicationGroupId"):
            return ["a standalone ElastiCache cluster has no AUTH: use a ReplicationGroup"]
        return []
    if resource_type != "aws:elasticache/replicationGroup:ReplicationGroup":
        return []
    out = []
    if not _truthy(props.get("atRestEncryptionEnabled")):
        out.append("ReplicationGroup must set atRestEncryptionEnabled")
    if not _truthy(props.get("transitEncryptionEnabled")):
        out.append("ReplicationGroup must set transitEncryptionEnabled")
    if not plain(props.get("authToken")) and not plain(props.get("userGroupIds")):
        out.append("ReplicationGroup needs an authToken (or RBAC userGroupIds)")
    if not plain(props.get("securityGroupIds")):
        out.append("ReplicationGroup must set securityGroupIds (else the VPC default SG)")
    cluster_mode = str(plain(props.get("clusterMode", "disabled"))).lower()
    if cluster_mode != "disabled" and not _truthy(props.get("automaticFailoverEnabled")):
        # redis.mode cluster: a shard without automatic failover is down until repaired.
        out.append("ReplicationGroup in cluster mode must set automaticFailoverEnabled")
    return out


def elasticache_serverless_guarded(resource_type: str, props: Props) -> list[str]:
    """redis.mode serverless: always TLS and always encrypted at rest (the AWS managed key
    unless kmsKeyId), but AUTH (RBAC), the network and the bill are ours to set: a user
    group, the node-only security group, and usage limits."""
    if resource_type != "aws:elasticache/serverlessCache:ServerlessCache":
        return []
    if str(plain(props.get("engine", ""))).lower() not in ("redis", "valkey"):
        return []
    out = []
    if not plain(props.get("userGroupId")):
        out.append("ServerlessCache needs a userGroupId (RBAC): serverless has no AUTH token")
    if not plain(props.get("securityGroupIds")):
        out.append("ServerlessCache must set securityGroupIds (else the VPC default SG)")
    limits = plain(props.get("cacheUsageLimits")) or {}
    storage = plain(limits.get("dataStorage")) or {}
    ecpus = [plain(e) for e in plain(limits.get("ecpuPerSeconds")) or []]
    if not plain(storage.get("maximum")) or not any(plain(e.get("maximum")) for e in ecpus):
        out.append("ServerlessCache needs cacheUsageLimits maxima for dataStorage and ECPUs")
    return out


def no_plaintext_secrets_in_env(resource_type: str, props: Props) -> list[str]:
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    out = []
    for c in containers(spec):
        for entry in plain(c.get("env")) or []:
            entry = plain(entry)
            if not isinstance(entry, Mapping) or plain(entry.get("value")) in (None, ""):
                continue
            name, value = str(entry.get("name", "?")), str(plain(entry["value"]))
            where = f"container {c.get('name', '?')} env {name}"
            if URL_WITH_CREDENTIALS.search(value):
                out.append(f"{where} holds a URL with credentials; use valueFrom.secretKeyRef")
            elif SECRET_NAME.search(name) and not ENV_REFERENCE.match(value):
                out.append(f"{where} is a literal secret; use valueFrom.secretKeyRef")
    return out


CHECKS: dict[str, tuple[str, Check]] = {
    "no-privileged-or-root-containers": (
        "Containers run as non-root, unprivileged, without privilege escalation",
        no_privileged_or_root,
    ),
    "container-resources-set": (
        "Every container sets cpu/memory requests and a memory limit",
        resources_set,
    ),
    "autoscaler-bounds": ("Autoscaler min replicas <= max (HPA min >= 1)", autoscaler_bounds),
    "elasticache-encrypted-with-auth": (
        "ElastiCache Redis is encrypted at rest and in transit, with AUTH, behind its own "
        "security group; in cluster mode with automatic failover",
        elasticache_encrypted_with_auth,
    ),
    "elasticache-serverless-guarded": (
        "ElastiCache Serverless has RBAC, the node-only security group and usage limits",
        elasticache_serverless_guarded,
    ),
    "rds-encrypted-private-protected": (
        "Results databases are encrypted, never public, and protected from deletion in prod",
        rds_encrypted_private_protected,
    ),
    "no-plaintext-secrets-in-env": (
        "Secrets reach containers through secretKeyRef, never as literal env values",
        no_plaintext_secrets_in_env,
    ),
}


def violations(
    resource_type: str, props: Props, context: Context | None = None
) -> dict[str, list[str]]:
    """Every failing check for one resource (what the pack would report); the production
    checks too when `context` names the stack."""
    found = {name: check(resource_type, props) for name, (_, check) in CHECKS.items()}
    if context is not None:
        for name, (_, context_check) in CONTEXT_CHECKS.items():
            found[name] = context_check(resource_type, props, context)
    return {name: msgs for name, msgs in found.items() if msgs}
