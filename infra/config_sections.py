"""The sections of a stack's config other than its queues, as pydantic models: each
validates its YAML object (camelCase keys, unknown keys refused) and holds the defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from infra.config_pods import Annotations
from infra.config_reader import (
    CONFIG,
    CPU,
    DNS_LABEL,
    IMAGE,
    MEMORY,
    STORAGE,
    ConfigModel,
    key_error,
    memory_mib,
)
from infra.config_redis import AwsNetwork, ElastiCacheOps

AutoscalerMode = Literal["hpa", "keda"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

Count = Annotated[StrictInt, Field(ge=0)]
Positive = Annotated[StrictInt, Field(ge=1)]


# A pydantic dataclass, not a model: the workloads' fixed resources are written positionally.
@pydantic_dataclass(config=CONFIG)
class Resources:
    """Requests and limits; YAML keys `cpu`, `memory`, `cpuLimit`, `memoryLimit`."""

    cpu_request: Annotated[str, Field(alias="cpu", pattern=CPU.pattern)]
    memory_request: Annotated[str, Field(alias="memory", pattern=MEMORY.pattern)]
    memory_limit: Annotated[str, Field(pattern=MEMORY.pattern)]
    cpu_limit: Annotated[str | None, Field(pattern=CPU.pattern)] = None

    def __post_init__(self) -> None:
        if memory_mib(self.memory_request) > memory_mib(self.memory_limit):
            raise key_error(
                "memory", f"{self.memory_request} exceeds memoryLimit {self.memory_limit}"
            )

    @property
    def memory_limit_mib(self) -> int:
        return memory_mib(self.memory_limit)

    def merged(self, overrides: Any) -> Any:
        """The YAML form of these values with `overrides` (a partial object) on top."""
        if not isinstance(overrides, Mapping):
            return overrides if overrides is not None else self._yaml()
        return {**self._yaml(), **overrides}

    def _yaml(self) -> dict[str, Any]:
        values: dict[str, str | None] = {"cpu": self.cpu_request, "memory": self.memory_request}
        values |= {"memoryLimit": self.memory_limit, "cpuLimit": self.cpu_limit}
        return {k: v for k, v in values.items() if v is not None}


class InClusterRedisConfig(ConfigModel):
    mode: Literal["in-cluster"]
    image: Annotated[str, Field(pattern=IMAGE.pattern)] = "redis:7.4.2"
    storage_size: Annotated[str, Field(pattern=STORAGE.pattern)] = "8Gi"
    storage_class: str | None = None
    resources: Resources = Resources("250m", "512Mi", "1Gi")

    @model_validator(mode="before")
    @classmethod
    def _partial_resources(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "resources" in data:
            default = cls.model_fields["resources"].default
            return {**data, "resources": default.merged(data["resources"])}
        return data


class ElastiCacheConfig(ElastiCacheOps, AwsNetwork):
    """`redis` in elasticache mode; the day-2 keys come from ElastiCacheOps, the network
    keys from AwsNetwork (shared with the cluster and serverless modes)."""

    mode: Literal["elasticache"]
    node_type: str = "cache.t4g.small"
    engine_version: Annotated[str, Field(pattern=r"^7(\.|$)")] = "7.1"
    num_cache_clusters: Positive = 1
    multi_az: StrictBool = False
    snapshot_retention_limit: Count = 1

    @model_validator(mode="before")
    @classmethod
    def _replica_for_multi_az(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("multiAz") is True:
            return {"numCacheClusters": 2, **data}
        return data

    @model_validator(mode="after")
    def _failover_target(self) -> ElastiCacheConfig:
        if self.multi_az and self.num_cache_clusters < 2:
            raise key_error("multiAz", "needs numCacheClusters >= 2 (a replica to fail over to)")
        return self


class AutoscalerConfig(ConfigModel):
    mode: AutoscalerMode
    prometheus_url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    install_provider: StrictBool = False
    polling_interval: Annotated[StrictInt, Field(ge=5)] = 15
    scale_down_stabilization: Count = Field(default=300, alias="scaleDownWindow")


class Features(ConfigModel):
    beat: StrictBool = True
    flower: StrictBool = True
    flower_ingress: StrictBool = False
    monitoring: StrictBool = True
    dashboards: StrictBool = True


class FlowerConfig(ConfigModel):
    user: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "admin"
    ingress_host: str | None = None
    ingress_class_name: str = "nginx"
    tls_secret_name: Annotated[str | None, Field(pattern=DNS_LABEL.pattern)] = None
    # Extra annotations of Flower's Ingress (auth, rate limits, cert-manager issuer...).
    ingress_annotations: Annotations = Field(default_factory=dict)


class MonitoringConfig(ConfigModel):
    namespace: Annotated[str, Field(pattern=DNS_LABEL.pattern)] = "monitoring"
    # kube-prometheus-stack selects monitors and rules by `release: <helm release name>`.
    release_label: str = "kube-prometheus-stack"
    ingress_namespace: Annotated[str, Field(pattern=DNS_LABEL.pattern)] = "ingress-nginx"
