"""`redis.mode: external`: a Redis this stack does not manage. Its URL is the Pulumi secret
`brokerUrl` (`pulumi config set --secret brokerUrl rediss://...`); the stack stores it in
the broker Secret like the URLs of the other modes, and exports the configured host."""

from __future__ import annotations

from urllib.parse import urlsplit

import pulumi

from infra.config import ExternalRedisConfig, Secrets
from infra.config_reader import InfraConfigError, config_key

SCHEMES = ("redis", "rediss")


def checked_url(url: str) -> str:
    """The URL as given, when Celery can use it as a broker; the error never echoes it."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise InfraConfigError(
            f"{config_key('brokerUrl')} must be a redis:// or rediss:// URL with a host"
        )
    if parts.scheme == "rediss" and "ssl_cert_reqs=" not in (parts.query or ""):
        raise InfraConfigError(
            f"{config_key('brokerUrl')}: a rediss:// URL needs ?ssl_cert_reqs=required "
            "(Celery refuses a TLS result backend without it)"
        )
    return url


class ExternalRedis(pulumi.ComponentResource):
    """Outputs: `broker_url` (secret), `host` (from the config, not the URL)."""

    broker_url: pulumi.Output[str]
    host: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        cfg: ExternalRedisConfig,
        secrets: Secrets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("celery-fleet:redis:ExternalRedis", resource_name, None, opts)
        if secrets.broker_url is None:  # load_config refuses this already
            raise InfraConfigError(f"redis.mode external needs {config_key('brokerUrl')}")
        self.broker_url = pulumi.Output.secret(secrets.broker_url.apply(checked_url))
        self.host = pulumi.Output.from_input(cfg.host)
        self.register_outputs({"host": self.host, "broker_url": self.broker_url})
