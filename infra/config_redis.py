"""Redis config beyond the broker's shape: the day-2 operation of ElastiCache (alarms, logs,
windows, snapshots, protection, encryption key, AUTH token rotation) and the `external`
mode (a Redis the stack does not manage, its URL a Pulumi secret); the AWS network keys every
ElastiCache mode shares."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from infra.config_reader import ConfigModel, key_error

# ddd:hh24:mi-ddd:hh24:mi (maintenance) and hh24:mi-hh24:mi (snapshots), UTC, as AWS takes them.
MAINTENANCE_WINDOW = re.compile(
    r"^(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]-"
    r"(mon|tue|wed|thu|fri|sat|sun):([01][0-9]|2[0-3]):[0-5][0-9]$"
)
SNAPSHOT_WINDOW = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")
ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{12}:\S+$")
KMS_KEY = re.compile(r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/\S+)$")
# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653)

Percent = Annotated[float, Field(gt=0, le=100)]


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class AlarmRouting(ConfigModel):
    """What every broker's alarms share: `snsTopicArn` (an existing topic) or
    `createSnsTopic` routes them, otherwise they only show in the console."""

    enabled: StrictBool = True
    sns_topic_arn: Annotated[str, Field(pattern=ARN.pattern)] | None = None
    create_sns_topic: StrictBool = False
    # Each worker process, beat, exporter and Flower hold connections; a node allows 65,000.
    connections: Annotated[StrictInt, Field(ge=1)] = 5000
    # Minutes a breach must last before the alarm fires.
    evaluation_minutes: Annotated[StrictInt, Field(ge=1, le=60)] = 5

    @model_validator(mode="after")
    def _one_topic(self) -> AlarmRouting:
        if self.sns_topic_arn and self.create_sns_topic:
            raise key_error("createSnsTopic", "conflicts with snsTopicArn: choose one")
        return self


class AlarmsConfig(AlarmRouting):
    """`redis.alarms` (modes elasticache and cluster): CloudWatch alarms on every node. Each
    threshold says when an operator must act."""

    # With noeviction a full Redis refuses every write: publishes fail, acks fail.
    memory_percent: Percent = 80
    engine_cpu_percent: Percent = 80
    replication_lag_seconds: Annotated[float, Field(gt=0)] = 10


class ServerlessAlarmsConfig(AlarmRouting):
    """`redis.alarms` (mode serverless): the cache against its own usage limits."""

    # Of maxDataStorageGb: at the limit, writes are refused (nothing queued has a TTL to evict).
    storage_percent: Percent = 80
    # Of maxEcpuPerSecond: at the limit, commands are throttled.
    ecpu_percent: Percent = 80


class ElastiCacheOps(ConfigModel):
    """The day-2 keys of `redis` in elasticache mode (ElastiCacheConfig inherits them)."""

    # Off: changes wait for the maintenance window. Set it for a change that must land now
    # (node type, parameter group, an AUTH token rotation); see README "Day-2 operations".
    apply_immediately: StrictBool = False
    maintenance_window: Annotated[str, Field(pattern=MAINTENANCE_WINDOW.pattern)] = (
        "sun:05:00-sun:06:00"
    )
    snapshot_window: Annotated[str, Field(pattern=SNAPSHOT_WINDOW.pattern)] = "03:00-04:00"
    # Slow log and engine log to CloudWatch Logs (JSON), kept this many days.
    log_delivery: StrictBool = True
    log_retention_days: StrictInt = 30
    # A snapshot when the group is deleted, and Pulumi's `protect` on the group: deleting the
    # broker then takes an explicit unprotect first. Both on unless a stack turns them off.
    final_snapshot: StrictBool = True
    protect: StrictBool = True
    # Encryption at rest with this customer managed key (default: the AWS managed key).
    kms_key_arn: Annotated[str, Field(pattern=KMS_KEY.pattern)] | None = None
    # Change this value (any text, e.g. a date) to generate a new AUTH token; ROTATE keeps
    # the old one valid beside it until a later SET (README "Rotate the Redis AUTH token").
    auth_token_rotation: Annotated[str, Field(min_length=1, max_length=64)] = "initial"
    auth_token_update_strategy: Literal["ROTATE", "SET"] = "ROTATE"
    alarms: AlarmsConfig = AlarmsConfig()

    @model_validator(mode="after")
    def _windows(self) -> ElastiCacheOps:
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise key_error(
                "logRetentionDays",
                f"CloudWatch Logs accepts {', '.join(map(str, LOG_RETENTION_DAYS))}",
            )
        start, end = self.snapshot_window.split("-")
        if (_minutes(end) - _minutes(start)) % 1440 < 60:
            raise key_error("snapshotWindow", "must span at least 60 minutes")
        # AWS refuses a snapshot window that overlaps the maintenance window; compare the
        # daily times (the maintenance window's day aside, overlapping any day is refused).
        m_start, m_end = (part.split(":", 1)[1] for part in self.maintenance_window.split("-"))
        if _overlap((_minutes(start), _minutes(end)), (_minutes(m_start), _minutes(m_end))):
            raise key_error("snapshotWindow", "must not overlap maintenanceWindow")
        return self


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    def minutes(span: tuple[int, int]) -> set[int]:
        start, end = span
        length = (end - start) % 1440 or 1440
        return {(start + i) % 1440 for i in range(length)}

    return bool(minutes(a) & minutes(b))


class ExternalRedisConfig(ConfigModel):
    """`redis.mode: external`: a Redis this stack does not manage (bring your own). Its URL
    is the Pulumi secret `brokerUrl`; the stack only stores it in the broker Secret."""

    mode: Literal["external"]
    # Shown in the stack's outputs and runbooks instead of the URL (which holds a password).
    host: Annotated[str, Field(min_length=1)]


class AwsNetwork(ConfigModel):
    """Where an ElastiCache endpoint lives and who may reach it (the EKS node SG only)."""

    vpc_id: str = Field(min_length=1)
    subnet_ids: tuple[str, ...] = Field(min_length=1)
    node_security_group_id: str = Field(min_length=1)
