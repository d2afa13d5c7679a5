"""The Kubernetes Secrets the workloads read their credentials from (never literal env)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.config import FleetConfig
from infra.labels import app_labels
from infra.names import APP_SECRET, BROKER_SECRET, BROKER_URL_KEY, PART_OF, SMTP_PASSWORD_KEY
from infra.podspec import SECRETS_CHECKSUM_ANNOTATION, secrets_checksum


class AppSecrets(pulumi.ComponentResource):
    """The broker URL Secret (CELERY_BROKER_URL) and, when configured, the SMTP password.

    Both change in place when a credential rotates (the stack sets the Kubernetes provider's
    `enableSecretMutable`; otherwise the provider would replace them, deleting first), and
    `rollout_annotations` carries a digest of their values for every pod template that reads
    them: a new value rolls those pods, which read Secrets only at start."""

    broker_secret_name: pulumi.Output[str]
    checksum: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: FleetConfig,
        namespace: pulumi.Input[str],
        broker_url: pulumi.Output[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:k8s:AppSecrets", resource_name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = app_labels(PART_OF, cfg.stack, "secrets")
        url: pulumi.Output[str] = pulumi.Output.secret(broker_url)
        broker = k8s.core.v1.Secret(
            f"{resource_name}-broker",
            metadata={"name": BROKER_SECRET, "namespace": namespace, "labels": labels},
            type="Opaque",
            string_data={BROKER_URL_KEY: url},
            opts=child,
        )
        self.broker_secret_name = broker.metadata.name
        if cfg.secrets.smtp_password is not None:
            k8s.core.v1.Secret(
                f"{resource_name}-app",
                metadata={"name": APP_SECRET, "namespace": namespace, "labels": labels},
                type="Opaque",
                string_data={SMTP_PASSWORD_KEY: cfg.secrets.smtp_password},
                opts=child,
            )
        self.checksum = secrets_checksum(url, cfg.secrets.smtp_password)
        self.register_outputs(
            {"broker_secret_name": self.broker_secret_name, "checksum": self.checksum}
        )

    @property
    def rollout_annotations(self) -> dict[str, pulumi.Input[str]]:
        return {SECRETS_CHECKSUM_ANNOTATION: self.checksum}
