"""Stack configuration, read once into frozen dataclasses.

Every bad value fails at preview time with a message naming the full config key
(`celery-fleet:queues.reports.maxReplicas`), never later as a half-applied update."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import pulumi

from infra.config_reader import (
    CPU,
    DNS_LABEL,
    IMAGE,
    MEMORY,
    PROJECT,
    STORAGE,
    InfraConfigError,
    Reader,
    config_key,
    memory_mib,
)
from service.queues import CATALOG, QueueCatalog, QueueSpec

RedisMode = Literal["elasticache", "in-cluster"]
AutoscalerMode = Literal["hpa", "keda"]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

# Seconds a worker gets beyond its queue's hard time limit before SIGKILL: the hard limit
# kills the task itself; the rest covers the warm shutdown and the final ack.
GRACE_MARGIN_SECONDS = 30
# Secrets: only ever read through `config.get_secret`; a plaintext value is refused.
SECRET_KEYS = ("smtpPassword", "flowerPassword")


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    memory_request: str
    memory_limit: str
    cpu_limit: str | None = None

    @property
    def memory_limit_mib(self) -> int:
        return memory_mib(self.memory_limit)


@dataclass(frozen=True)
class QueueConfig:
    """One catalog queue with this stack's overrides applied."""

    spec: QueueSpec
    min_replicas: int
    max_replicas: int
    backlog_per_replica: int
    resources: Resources

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def termination_grace_seconds(self) -> int:
        return self.spec.hard_time_limit + GRACE_MARGIN_SECONDS

    @property
    def max_memory_per_child_kb(self) -> int:
        # Leave 20% of the limit to the main process so the pod recycles children before OOM.
        return int(self.resources.memory_limit_mib * 1024 * 0.8) // self.spec.concurrency


@dataclass(frozen=True)
class InClusterRedisConfig:
    image: str = "redis:7.4.2"
    storage_size: str = "8Gi"
    storage_class: str | None = None
    resources: Resources = Resources("250m", "512Mi", "1Gi")


@dataclass(frozen=True)
class ElastiCacheConfig:
    vpc_id: str
    subnet_ids: tuple[str, ...]
    node_security_group_id: str
    node_type: str = "cache.t4g.small"
    engine_version: str = "7.1"
    num_cache_clusters: int = 1
    multi_az: bool = False
    snapshot_retention_limit: int = 1


@dataclass(frozen=True)
class RedisConfig:
    mode: RedisMode
    in_cluster: InClusterRedisConfig | None = None
    elasticache: ElastiCacheConfig | None = None


@dataclass(frozen=True)
class AutoscalerConfig:
    mode: AutoscalerMode
    prometheus_url: str
    install_provider: bool = False
    polling_interval: int = 15
    scale_down_stabilization: int = 300


@dataclass(frozen=True)
class Features:
    beat: bool = True
    flower: bool = True
    flower_ingress: bool = False
    monitoring: bool = True
    dashboards: bool = True


@dataclass(frozen=True)
class FlowerConfig:
    user: str = "admin"
    ingress_host: str | None = None
    ingress_class_name: str = "nginx"
    tls_secret_name: str | None = None


@dataclass(frozen=True)
class MonitoringConfig:
    namespace: str = "monitoring"
    # kube-prometheus-stack selects monitors and rules by `release: <helm release name>`.
    release_label: str = "kube-prometheus-stack"
    ingress_namespace: str = "ingress-nginx"


@dataclass(frozen=True)
class Secrets:
    smtp_password: pulumi.Output[str] | None = None
    flower_password: pulumi.Output[str] | None = None


@dataclass(frozen=True)
class FleetConfig:
    stack: str
    namespace: str
    image: str
    image_pull_policy: PullPolicy
    log_level: LogLevel
    queues: tuple[QueueConfig, ...]
    redis: RedisConfig
    autoscaler: AutoscalerConfig
    features: Features
    flower: FlowerConfig
    monitoring: MonitoringConfig
    secrets: Secrets = Secrets()

    def queue(self, name: str) -> QueueConfig:
        for q in self.queues:
            if q.name == name:
                return q
        raise KeyError(name)


def _resources(r: Reader, default: Resources) -> Resources:
    r.only("cpu", "memory", "cpuLimit", "memoryLimit")
    res = Resources(
        cpu_request=r.text("cpu", default.cpu_request, pattern=CPU) or default.cpu_request,
        memory_request=r.text("memory", default.memory_request, pattern=MEMORY)
        or default.memory_request,
        memory_limit=r.text("memoryLimit", default.memory_limit, pattern=MEMORY)
        or default.memory_limit,
        cpu_limit=r.text("cpuLimit", default.cpu_limit, pattern=CPU),
    )
    if memory_mib(res.memory_request) > memory_mib(res.memory_limit):
        raise InfraConfigError(f"{r.key('memory')} exceeds {r.key('memoryLimit')}")
    return res


def _default_worker_resources(spec: QueueSpec) -> Resources:
    # Each prefork child holds its own copy of the app: memory scales with concurrency.
    request = 128 + 128 * spec.concurrency
    return Resources("250m", f"{request}Mi", f"{request * 2}Mi")


def _queues(r: Reader, catalog: QueueCatalog, mode: AutoscalerMode) -> tuple[QueueConfig, ...]:
    for name in r.raw:
        if name not in catalog:
            raise InfraConfigError(
                f"unknown queue {r.key(name)}: {name!r} is not in service/queues.py CATALOG "
                f"(known: {', '.join(catalog.names)})"
            )
    result = []
    for spec in catalog:
        q = r.obj(spec.name)
        q.only("minReplicas", "maxReplicas", "backlogPerReplica", "resources")
        auto = spec.autoscaling
        # The HPA cannot scale to zero without the HPAScaleToZero feature gate; KEDA can.
        floor = 0 if mode == "keda" else 1
        lo = q.integer("minReplicas", max(auto.min_replicas, floor), minimum=floor)
        hi = q.integer("maxReplicas", auto.max_replicas, minimum=1)
        if lo > hi:
            raise InfraConfigError(f"{q.key('minReplicas')} ({lo}) > {q.key('maxReplicas')} ({hi})")
        resources = _resources(q.obj("resources"), _default_worker_resources(spec))
        per_child_kb = int(resources.memory_limit_mib * 1024 * 0.8) // spec.concurrency
        if per_child_kb < 10_000:
            raise InfraConfigError(
                f"{q.key('resources')}.memoryLimit is too small for concurrency {spec.concurrency}"
            )
        result.append(
            QueueConfig(
                spec=spec,
                min_replicas=lo,
                max_replicas=hi,
                backlog_per_replica=q.integer(
                    "backlogPerReplica", auto.backlog_per_replica, minimum=1
                ),
                resources=resources,
            )
        )
    return tuple(result)


def _redis(r: Reader) -> RedisConfig:
    mode = cast(RedisMode, r.choice("mode", RedisMode))
    if mode == "in-cluster":
        r.only("mode", "image", "storageSize", "storageClass", "resources")
        d = InClusterRedisConfig()
        return RedisConfig(
            mode=mode,
            in_cluster=InClusterRedisConfig(
                image=r.text("image", d.image, pattern=IMAGE) or d.image,
                storage_size=r.text("storageSize", d.storage_size, pattern=STORAGE)
                or d.storage_size,
                storage_class=r.text("storageClass"),
                resources=_resources(r.obj("resources"), d.resources),
            ),
        )
    r.only(
        "mode", "vpcId", "subnetIds", "nodeSecurityGroupId", "nodeType", "engineVersion",
        "numCacheClusters", "multiAz", "snapshotRetentionLimit",
    )  # fmt: skip
    multi_az = r.flag("multiAz", False)
    clusters = r.integer("numCacheClusters", 2 if multi_az else 1, minimum=1)
    if multi_az and clusters < 2:
        raise InfraConfigError(
            f"{r.key('multiAz')} needs {r.key('numCacheClusters')} >= 2 (a replica to fail over to)"
        )
    engine = r.text("engineVersion", "7.1") or "7.1"
    if not engine.startswith("7"):
        raise InfraConfigError(f"{r.key('engineVersion')} must be 7.x (parameter family redis7)")
    return RedisConfig(
        mode=mode,
        elasticache=ElastiCacheConfig(
            vpc_id=r.req_str("vpcId"),
            subnet_ids=r.str_list("subnetIds"),
            node_security_group_id=r.req_str("nodeSecurityGroupId"),
            node_type=r.text("nodeType", "cache.t4g.small") or "cache.t4g.small",
            engine_version=engine,
            num_cache_clusters=clusters,
            multi_az=multi_az,
            snapshot_retention_limit=r.integer("snapshotRetentionLimit", 1),
        ),
    )


def parse_config(
    raw: Mapping[str, Any],
    stack: str,
    *,
    secrets: Secrets | None = None,
    catalog: QueueCatalog = CATALOG,
) -> FleetConfig:
    """Build the typed config from `{key-without-project-prefix: value}`; pure, for tests."""
    top = Reader(raw, "")
    top.only(
        "namespace", "image", "imagePullPolicy", "logLevel", "redis", "autoscaler", "queues",
        "features", "flower", "monitoring", *SECRET_KEYS,
    )  # fmt: skip
    auto = top.obj("autoscaler")
    auto.only("mode", "prometheusUrl", "installProvider", "pollingInterval", "scaleDownWindow")
    autoscaler = AutoscalerConfig(
        mode=cast(AutoscalerMode, auto.choice("mode", AutoscalerMode)),
        prometheus_url=auto.req_str("prometheusUrl", pattern=re.compile(r"^https?://\S+$")),
        install_provider=auto.flag("installProvider", False),
        polling_interval=auto.integer("pollingInterval", 15, minimum=5),
        scale_down_stabilization=auto.integer("scaleDownWindow", 300, minimum=0),
    )
    feats = top.obj("features")
    feats.only("beat", "flower", "flowerIngress", "monitoring", "dashboards")
    features = Features(
        beat=feats.flag("beat", True),
        flower=feats.flag("flower", True),
        flower_ingress=feats.flag("flowerIngress", False),
        monitoring=feats.flag("monitoring", True),
        dashboards=feats.flag("dashboards", True),
    )
    fl = top.obj("flower")
    fl.only("user", "ingressHost", "ingressClassName", "tlsSecretName")
    flower = FlowerConfig(
        user=fl.text("user", "admin", pattern=re.compile(r"^[A-Za-z0-9_.-]+$")) or "admin",
        ingress_host=fl.text("ingressHost"),
        ingress_class_name=fl.text("ingressClassName", "nginx") or "nginx",
        tls_secret_name=fl.text("tlsSecretName", pattern=DNS_LABEL),
    )
    if features.flower_ingress and not flower.ingress_host:
        raise InfraConfigError(
            f"{config_key('features.flowerIngress')} needs {config_key('flower.ingressHost')}"
        )
    mon = top.obj("monitoring")
    mon.only("namespace", "releaseLabel", "ingressNamespace")
    monitoring = MonitoringConfig(
        namespace=mon.text("namespace", "monitoring", pattern=DNS_LABEL) or "monitoring",
        release_label=mon.text("releaseLabel", "kube-prometheus-stack") or "kube-prometheus-stack",
        ingress_namespace=mon.text("ingressNamespace", "ingress-nginx", pattern=DNS_LABEL)
        or "ingress-nginx",
    )
    return FleetConfig(
        stack=stack,
        namespace=top.text("namespace", "celery-fleet", pattern=DNS_LABEL) or "celery-fleet",
        image=top.req_str("image", pattern=IMAGE),
        image_pull_policy=cast(
            PullPolicy, top.choice("imagePullPolicy", PullPolicy, "IfNotPresent")
        ),
        log_level=cast(LogLevel, top.choice("logLevel", LogLevel, "INFO")),
        queues=_queues(top.obj("queues"), catalog, autoscaler.mode),
        redis=_redis(top.obj("redis")),
        autoscaler=autoscaler,
        features=features,
        flower=flower,
        monitoring=monitoring,
        secrets=secrets or Secrets(),
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
    )
    return parse_config(raw, pulumi.get_stack(), secrets=secrets)
