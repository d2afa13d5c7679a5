"""Checks for the results database (RDS PostgreSQL, or Aurora if a stack adds one):
storage encrypted, never publicly accessible, and on production stacks deletion protection
with a final snapshot. A stack is production when its resources carry `stack: prod` (the
tag every celery-fleet AWS resource gets)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policy.pods import plain

PROTECTED_STACKS = ("prod", "production")
_INSTANCE = "aws:rds/instance:Instance"
_CLUSTER = "aws:rds/cluster:Cluster"
_CLUSTER_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"


def _true(value: Any) -> bool:
    value = plain(value)
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _protected(props: Mapping[str, Any]) -> bool:
    tags = plain(props.get("tags")) or {}
    return isinstance(tags, Mapping) and str(plain(tags.get("stack", ""))) in PROTECTED_STACKS


def rds_encrypted_private_protected(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type not in (_INSTANCE, _CLUSTER, _CLUSTER_INSTANCE):
        return []
    kind = resource_type.rsplit(":", 1)[-1]
    out = []
    if resource_type != _CLUSTER_INSTANCE and not _true(props.get("storageEncrypted")):
        out.append(f"{kind} must set storageEncrypted")
    if resource_type != _CLUSTER and _true(props.get("publiclyAccessible")):
        out.append(f"{kind} must not be publiclyAccessible")
    if resource_type != _CLUSTER_INSTANCE and _protected(props):
        if not _true(props.get("deletionProtection")):
            out.append(f"{kind} of a production stack must set deletionProtection")
        if _true(props.get("skipFinalSnapshot")):
            out.append(f"{kind} of a production stack must keep a final snapshot")
    return out
