"""celery-fleet: wires the components; every decision lives in the modules it imports."""

from __future__ import annotations

import sys
from pathlib import Path

# `pulumi up` runs this directory with runpy, so infra/ itself is sys.path[0] (no module here
# may shadow the standard library) and the repo root must be added for `infra.*`/`service.*`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from infra.app_secrets import AppSecrets
from infra.beat import Beat
from infra.config import ElastiCacheConfig, InClusterRedisConfig, load_config
from infra.exporter import QueueExporter
from infra.flower import Flower
from infra.hpa_handover import HpaHandover
from infra.metrics_provider import ExternalMetricsProvider, provider_first
from infra.monitoring import Monitoring
from infra.provider_settings import require_mutable_secrets
from infra.redis_alarms import cluster_mode_alarms, replication_group_alarms
from infra.redis_cluster_config import ElastiCacheClusterConfig, ElastiCacheServerlessConfig
from infra.redis_cluster_mode import ElastiCacheClusterRedis
from infra.redis_elasticache import ElastiCacheRedis
from infra.redis_external import ExternalRedis
from infra.redis_incluster import InClusterRedis
from infra.redis_serverless import ServerlessRedis
from infra.redis_serverless_alarms import serverless_alarms
from infra.results import ResultStore
from infra.security import FleetNamespace
from infra.worker_pool import WorkerPool
from service.catalog.naming import worker_deployment_name

cfg = load_config()
require_mutable_secrets()
ns = FleetNamespace("fleet", cfg)
after_ns = pulumi.ResourceOptions(depends_on=[ns])

redis: InClusterRedis | ElastiCacheRedis | ElastiCacheClusterRedis | ServerlessRedis | ExternalRedis
if isinstance(cfg.redis, InClusterRedisConfig):
    redis = InClusterRedis("redis", cfg.redis, ns.name, cfg.namespace, opts=after_ns)
elif isinstance(cfg.redis, ElastiCacheClusterConfig):
    redis = ElastiCacheClusterRedis("redis", cfg.redis, cfg.stack)
    cluster_mode_alarms(cfg.redis, cfg.stack, redis.replication_group_id)
elif isinstance(cfg.redis, ElastiCacheServerlessConfig):
    redis = ServerlessRedis("redis", cfg.redis, cfg.stack)
    serverless_alarms(cfg.redis, cfg.stack, redis.cache_name)
elif isinstance(cfg.redis, ElastiCacheConfig):
    redis = ElastiCacheRedis("redis", cfg.redis, cfg.stack)
    replication_group_alarms(cfg.redis, cfg.stack, redis.replication_group_id)
else:
    redis = ExternalRedis("redis", cfg.redis, cfg.secrets)
secrets = AppSecrets("app", cfg, ns.name, redis.broker_url, opts=after_ns)
# results.mode: where stored task results live (redis: the broker's, nothing created).
results = ResultStore(
    "results", cfg.results, cfg.redis, cfg.stack, ns.name, cfg.namespace, opts=after_ns
)
after_secrets = pulumi.ResourceOptions(depends_on=[ns, secrets, results])
# Every pod that reads a Secret rolls when a credential in it changes.
rollout = secrets.rollout_annotations

# KEDA mode: the provider first (ScaledObjects need KEDA's CRDs and webhook). HPA mode: the
# autoscalers first, so that a switch from KEDA deletes the ScaledObjects while KEDA still
# runs (it removes their finalizers) and only then uninstalls KEDA.
provider = None
pool_deps: list[pulumi.Resource] = [ns, secrets, results]
if cfg.autoscaler.install_provider and provider_first(cfg.autoscaler):
    provider = ExternalMetricsProvider("metrics-provider", cfg.autoscaler, cfg.monitoring.namespace)
    pool_deps.append(provider)
pools = {
    q.name: WorkerPool(
        q.name,
        q,
        cfg,
        ns.name,
        opts=pulumi.ResourceOptions(depends_on=pool_deps),
        template_annotations=rollout,
    )
    for q in cfg.queues
}
after_pools = pulumi.ResourceOptions(depends_on=list(pools.values()))
if cfg.autoscaler.install_provider and provider is None:
    provider = ExternalMetricsProvider(
        "metrics-provider", cfg.autoscaler, cfg.monitoring.namespace, opts=after_pools
    )
if cfg.autoscaler.mode == "hpa":
    # After a switch from KEDA, raise pools it left at zero (the HPA never scales from 0).
    floors = {worker_deployment_name(q.name): max(q.min_replicas, 1) for q in cfg.queues}
    HpaHandover("autoscaler-handover", cfg, ns.name, floors, opts=after_pools)
beat = (
    Beat("beat", cfg, ns.name, opts=after_secrets, template_annotations=rollout)
    if cfg.features.beat
    else None
)
exporter = QueueExporter("exporter", cfg, ns.name, opts=after_secrets, template_annotations=rollout)
flower = (
    Flower("flower", cfg, ns.name, opts=after_secrets, template_annotations=rollout)
    if cfg.features.flower
    else None
)
if cfg.features.monitoring:
    Monitoring(
        "monitoring",
        cfg,
        ns.name,
        exporter.labels,
        flower.labels if flower else None,
        opts=after_ns,
    )

pulumi.export("namespace", ns.name)
# What runs now (CI passes repo@sha256:...): previews and drift checks reuse it.
pulumi.export("image", cfg.image)
pulumi.export("redis_mode", cfg.redis.mode)
pulumi.export("redis_host", redis.host)
pulumi.export("broker_url", redis.broker_url)
pulumi.export("autoscaler_mode", cfg.autoscaler.mode)
pulumi.export("results_mode", cfg.results.mode)
if results.host is not None:
    pulumi.export("results_host", results.host)
pulumi.export("worker_deployments", {name: p.deployment_name for name, p in pools.items()})
if flower is not None and flower.url is not None:
    pulumi.export("flower_url", flower.url)
