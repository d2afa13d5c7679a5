"""Settings of the Kubernetes provider the program depends on, checked at preview."""

from __future__ import annotations

import os

import pulumi

from infra.config_reader import InfraConfigError

SECRET_MUTABLE_KEY = "enableSecretMutable"
SECRET_MUTABLE_ENV = "PULUMI_K8S_ENABLE_SECRET_MUTABLE"


def secrets_mutable() -> bool:
    """What pulumi-kubernetes decides (provider.go: the `kubernetes:enableSecretMutable`
    config, else the environment variable, else false)."""
    configured = pulumi.Config("kubernetes").get(SECRET_MUTABLE_KEY)
    if configured is not None:
        return configured.strip().lower() == "true"
    return os.environ.get(SECRET_MUTABLE_ENV, "").strip().lower() == "true"


def require_mutable_secrets() -> None:
    """Without it the provider REPLACES a Secret whose data changes, deleting it first
    (forceNewProperties: `.data`, `.stringData`): a credential rotation would leave the
    pods that start meanwhile without their broker URL. With it, the Secret is updated in
    place and the checksum annotation rolls the pods."""
    if not secrets_mutable():
        raise InfraConfigError(
            f"kubernetes:{SECRET_MUTABLE_KEY} must be true (in Pulumi.<stack>.yaml): "
            "credential rotations update the fleet's Secrets in place"
        )
