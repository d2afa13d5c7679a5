"""The resolved model of one stack: the queue catalog merged with `Pulumi.<stack>.yaml`.

Built once (`load_config`) and read by every consumer: worker pools, autoscalers and the
PrometheusRule (rendered from `FleetConfig.catalog`, the stack's replicas and backlog
targets). The dashboards take only the queue names from the catalog, which a stack cannot
change, so every stack deploys the committed dashboards as they are.

Every bad value fails at preview time with a message naming the full config key
(`celery-fleet:queues.reports.maxReplicas`), never later as a half-applied update."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import pulumi
from pydantic import ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator

from infra.config_pods import PodSettings, ServiceAccountConfig
from infra.config_reader import (
    CONFIG,
    DNS_LABEL,
    IMAGE,
    PROJECT,
    ConfigModel,
    InfraConfigError,
    config_key,
    key_error,
    validated,
)
from infra.config_redis import ElastiCacheOps, ExternalRedisConfig
from infra.config_sections import (
    AutoscalerConfig,
    AutoscalerMode,
    Count,
    ElastiCacheConfig,
    Features,
    FlowerConfig,
    InClusterRedisConfig,
    LogLevel,
    MonitoringConfig,
    Positive,
    PullPolicy,
    Resources,
)
from infra.redis_cluster_config import ElastiCacheClusterConfig, ElastiCacheServerlessConfig
from infra.results_config import PostgresResults, RedisResults, ResultsConfig, rds_network
from service.catalog.queues import CATALOG, Autoscaling, QueueCatalog, QueueSpec

__all__ = [  # the section models are part of this module's interface
    "AutoscalerConfig",
    "ElastiCacheConfig",
    "ElastiCacheOps",
    "ExternalRedisConfig",
    "Features",
    "FleetConfig",
    "FlowerConfig",
    "InClusterRedisConfig",
    "MonitoringConfig",
    "PodSettings",
    "QueueConfig",
    "Resources",
    "Secrets",
    "ServiceAccountConfig",
    "load_config",
    "parse_config",
]


# Seconds a worker gets beyond its queue's hard time limit before SIGKILL: the hard limit
# kills the task itself; the rest covers the warm shutdown and the final ack.
GRACE_MARGIN_SECONDS = 30
# Secrets: only ever read through `config.get_secret`; a plaintext value is refused.
SECRET_KEYS = ("smtpPassword", "flowerPassword", "brokerUrl")
# Each prefork child gets this share of the pod's memory limit; the rest is the main process'.
CHILD_MEMORY_SHARE = 0.8
MIN_CHILD_MEMORY_KB = 10_000


class QueueConfig(ConfigModel):
    """One catalog queue with this stack's overrides applied (`queues.<name>` in YAML).

    The stack's replica bounds and backlog target are held once, in the three fields below;
    `autoscaling` (read by the autoscaler) and `spec` (the catalog entry with them in it,
    read by the alert rules) are both derived from them, so the two cannot disagree."""

    min_replicas: Count
    max_replicas: Positive
    backlog_per_replica: Positive
    resources: Resources
    # Placement and pod annotations of this pool, over the stack's `pods`.
    pods: PodSettings = PodSettings()
    # The catalog entry as the catalog defines it; `spec` puts this stack's autoscaling in.
    _catalog_spec: QueueSpec = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _catalog_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        context: dict[str, Any] = info.context or {}
        spec: QueueSpec = context["spec"]
        if not isinstance(data, Mapping):
            return data
        auto = spec.autoscaling
        defaults = {
            "minReplicas": max(auto.min_replicas, context["lowest_min_replicas"]),
            "maxReplicas": auto.max_replicas,
            "backlogPerReplica": auto.backlog_per_replica,
        }
        return {
            **defaults,
            **data,
            "resources": _worker_resources(spec).merged(data.get("resources")),
        }

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> QueueConfig:
        context: dict[str, Any] = info.context or {}
        spec: QueueSpec = context["spec"]
        floor = context["lowest_min_replicas"]
        if self.min_replicas < floor:
            # The HPA cannot scale to zero without the HPAScaleToZero feature gate; KEDA can.
            raise key_error("minReplicas", f"must be >= {floor} with autoscaler.mode hpa")
        if self.min_replicas > self.max_replicas:
            raise key_error("minReplicas", f"{self.min_replicas} > maxReplicas {self.max_replicas}")
        if self._child_memory_kb(spec) < MIN_CHILD_MEMORY_KB:
            raise key_error(
                "resources", f"memoryLimit is too small for concurrency {spec.concurrency}"
            )
        self._catalog_spec = spec
        return self

    def _child_memory_kb(self, spec: QueueSpec) -> int:
        return int(self.resources.memory_limit_mib * 1024 * CHILD_MEMORY_SHARE) // spec.concurrency

    @property
    def autoscaling(self) -> Autoscaling:
        return Autoscaling(self.min_replicas, self.max_replicas, self.backlog_per_replica)

    @property
    def spec(self) -> QueueSpec:
        return dataclasses.replace(self._catalog_spec, autoscaling=self.autoscaling)

    @property
    def name(self) -> str:
        return self._catalog_spec.name

    @property
    def termination_grace_seconds(self) -> int:
        return self._catalog_spec.hard_time_limit + GRACE_MARGIN_SECONDS

    @property
    def max_memory_per_child_kb(self) -> int:
        # Leave the main process its share so the pod recycles children before the OOM kill.
        return self._child_memory_kb(self._catalog_spec)


def _worker_resources(spec: QueueSpec) -> Resources:
    # Each prefork child holds its own copy of the app: memory scales with concurrency.
    request = 128 + 128 * spec.concurrency
    return Resources("250m", f"{request}Mi", f"{request * 2}Mi")


@dataclasses.dataclass(frozen=True)
class Secrets:
    smtp_password: pulumi.Output[str] | None = None
    flower_password: pulumi.Output[str] | None = None
    # redis.mode external: the broker URL, set with `pulumi config set --secret brokerUrl`.
    broker_url: pulumi.Output[str] | None = None


class StackSettings(ConfigModel):
    """Every `celery-fleet:*` key of Pulumi.<stack>.yaml but the queues and the secrets."""

    namespace: Annotated[str, Field(pattern=DNS_LABEL.pattern)] = "celery-fleet"
    image: Annotated[str, Field(pattern=IMAGE.pattern)]
    image_pull_policy: PullPolicy = "IfNotPresent"
    log_level: LogLevel = "INFO"
    redis: (
        InClusterRedisConfig
        | ElastiCacheConfig
        | ElastiCacheClusterConfig
        | ElastiCacheServerlessConfig
        | ExternalRedisConfig
    ) = Field(discriminator="mode")
    autoscaler: AutoscalerConfig
    features: Features = Features()
    flower: FlowerConfig = FlowerConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    results: ResultsConfig = Field(default=RedisResults(), discriminator="mode")
    # Placement, priority and annotations of every fleet pod (queues.<name>.pods on top).
    pods: PodSettings = PodSettings()
    service_account: ServiceAccountConfig = ServiceAccountConfig()
    # Keys read elsewhere: the queues (resolved against the catalog) and the secrets.
    OTHER_KEYS: ClassVar[tuple[str, ...]] = ("queues", *SECRET_KEYS)

    @model_validator(mode="after")
    def _ingress_host(self) -> StackSettings:
        if self.features.flower_ingress and not self.flower.ingress_host:
            raise key_error("flower.ingressHost", "required by features.flowerIngress")
        if isinstance(self.results, PostgresResults) and self.results.provider == "rds":
            rds_network(self.results, self.redis)  # raises, naming the key, when incomplete
        return self


class FleetConfig(StackSettings):
    """The resolved stack: settings, one QueueConfig per catalog queue, secrets."""

    model_config = ConfigDict(**CONFIG, arbitrary_types_allowed=True)

    stack: str
    queues: tuple[QueueConfig, ...]
    secrets: Secrets = Secrets()

    def queue(self, name: str) -> QueueConfig:
        for q in self.queues:
            if q.name == name:
                return q
        raise KeyError(name)

    @property
    def catalog(self) -> QueueCatalog:
        """The catalog as this stack runs it (its replicas and backlog targets): what the
        stack's alert rules are rendered from."""
        return QueueCatalog(tuple(q.spec for q in self.queues), CATALOG.default_queue)


# `queues.<name>`: each a partial QueueConfig, validated once merged with the catalog.
QueueOverrides = dict[str, dict[str, Any] | None]


def _queues(
    raw: Mapping[str, Any], catalog: QueueCatalog, mode: AutoscalerMode
) -> tuple[QueueConfig, ...]:
    for name in raw:
        if name not in catalog:
            raise InfraConfigError(
                f"unknown queue {config_key(f'queues.{name}')}: {name!r} is not in "
                f"service/catalog/queues.py CATALOG (known: {', '.join(catalog.names)})"
            )
    floor = 0 if mode == "keda" else 1
    return tuple(
        validated(
            QueueConfig,
            {} if raw.get(spec.name) is None else raw[spec.name],
            ("queues", spec.name),
            {"spec": spec, "lowest_min_replicas": floor},
        )
        for spec in catalog
    )


def parse_config(
    raw: Mapping[str, Any],
    stack: str,
    *,
    secrets: Secrets | None = None,
    catalog: QueueCatalog = CATALOG,
) -> FleetConfig:
    """Build the resolved model from `{key-without-project-prefix: value}`; pure, for tests."""
    values = {k: v for k, v in raw.items() if k not in StackSettings.OTHER_KEYS and v is not None}
    settings = validated(StackSettings, values)
    overrides = validated(QueueOverrides, raw.get("queues") or {}, ("queues",))
    queues = _queues(overrides, catalog, settings.autoscaler.mode)
    return FleetConfig.model_construct(
        **dict(settings), stack=stack, queues=queues, secrets=secrets or Secrets()
    )


def _present_keys() -> set[str]:
    """Every `celery-fleet:*` key the engine passed, so misspelt top-level keys are caught."""
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{PROJECT}:"
    return {k.removeprefix(prefix) for k in keys if k.startswith(prefix)}


def _decode(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def load_config() -> FleetConfig:
    """Read this stack's config from the Pulumi engine (call once, from __main__)."""
    cfg = pulumi.Config(PROJECT)
    raw: dict[str, Any] = {}
    for key in _present_keys() - set(SECRET_KEYS):
        raw[key] = _decode(cfg.get(key))
    for key in SECRET_KEYS:
        if cfg.get(key) is not None and not pulumi.runtime.is_config_secret(config_key(key)):
            raise InfraConfigError(
                f"{config_key(key)} must be a secret: pulumi config set --secret {key} <value>"
            )
    secrets = Secrets(
        smtp_password=cfg.get_secret("smtpPassword"),
        flower_password=cfg.get_secret("flowerPassword"),
        broker_url=cfg.get_secret("brokerUrl"),
    )
    resolved = parse_config(raw, pulumi.get_stack(), secrets=secrets)
    if isinstance(resolved.redis, ExternalRedisConfig) and secrets.broker_url is None:
        raise InfraConfigError(
            f"redis.mode external needs the broker URL: pulumi config set --secret brokerUrl "
            f"rediss://:<password>@<host>:6379/0 ({config_key('brokerUrl')})"
        )
    return resolved
