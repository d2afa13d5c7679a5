"""Find the pod specs and containers inside any workload's props (camelCase, as sent)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Props = Mapping[str, Any]

_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job",
                   "ReplicationController"}  # fmt: skip


def kind_of(resource_type: str) -> str:
    """`kubernetes:apps/v1:Deployment` -> `Deployment`."""
    return resource_type.rsplit(":", 1)[-1]


def plain(value: Any) -> Any:
    """Unwrap a pulumi_policy.Secret (anything with a `.value`); secrets are still literals."""
    return getattr(value, "value", value) if type(value).__name__ == "Secret" else value


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        obj = plain(obj)
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return plain(obj)


def pod_spec(resource_type: str, props: Props) -> Mapping[str, Any] | None:
    if not resource_type.startswith("kubernetes:"):
        return None
    kind = kind_of(resource_type)
    if kind == "Pod":
        spec = _get(props, "spec")
    elif kind in _TEMPLATE_KINDS:
        spec = _get(props, "spec", "template", "spec")
    elif kind == "CronJob":
        spec = _get(props, "spec", "jobTemplate", "spec", "template", "spec")
    else:
        return None
    return spec if isinstance(spec, Mapping) else None


def containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in plain(spec.get(field)) or []:
            c = plain(c)
            if isinstance(c, Mapping):
                yield c


def get(obj: Any, *path: str) -> Any:
    return _get(obj, *path)
