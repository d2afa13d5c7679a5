"""Turn the mock-recorded inputs of Kubernetes resources into API manifests."""

from __future__ import annotations

from typing import Any

# Pulumi's wire marker for a secret value: {SIG: SECRET_SIG, "value": ...}.
SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
NOT_K8S = ("kubernetes:helm.sh/", "kubernetes:yaml", "kubernetes:kustomize")


def is_secret_value(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG) == SECRET_SIG


def clean(value: Any) -> Any:
    """Unwrap secrets and give integers back their type (the wire carries only floats)."""
    if is_secret_value(value):
        return clean(value["value"])
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def is_k8s_object(resource: dict[str, Any]) -> bool:
    typ = str(resource["type"])
    return typ.startswith("kubernetes:") and not typ.startswith(NOT_K8S)


def to_manifest(resource: dict[str, Any]) -> dict[str, Any]:
    manifest = clean(resource["inputs"])
    assert "apiVersion" in manifest and "kind" in manifest, resource["type"]
    return dict(manifest)


def manifests(resources: list[dict[str, Any]], kind: str | None = None) -> list[dict[str, Any]]:
    found = [to_manifest(r) for r in resources if is_k8s_object(r)]
    return [m for m in found if kind is None or m["kind"] == kind]


def by_name(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests(resources, kind)}


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec
