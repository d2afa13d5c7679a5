"""One shape for every CloudWatch metric alarm the stack creates (the broker's in each
`redis.mode`, the results database's): an `AlarmSpec` says what is measured and when to act,
an `AlarmWindow` how long a breach must last, and `metric_alarm` builds the
`aws.cloudwatch.MetricAlarm` (pulumi-aws arguments, checked against the installed package)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class AlarmSpec:
    """`key` names the alarm's resource; `description` carries the operator's action."""

    key: str
    metric: str
    threshold: float
    statistic: str
    description: str
    comparison: str = "GreaterThanThreshold"
    # A source that reports nothing (a primary's replication lag, a node being replaced) is
    # not an alarm by default; a check that must never go quiet says "breaching".
    treat_missing_data: str = "notBreaching"
    # Node-based ElastiCache: only replicas report ReplicationLag.
    replicas_only: bool = False


@dataclass(frozen=True)
class AlarmWindow:
    """`period` seconds per datapoint, `evaluation_periods` datapoints looked at, of which
    `datapoints_to_alarm` must breach (None: CloudWatch's default, all of them)."""

    period: int
    evaluation_periods: int
    datapoints_to_alarm: int | None = None


def metric_alarm(
    resource_name: str,
    spec: AlarmSpec,
    *,
    namespace: str,
    dimensions: Mapping[str, pulumi.Input[str]],
    window: AlarmWindow,
    actions: Sequence[pulumi.Input[str]],
    tags: Mapping[str, str],
    opts: pulumi.ResourceOptions,
    name: pulumi.Input[str] | None = None,
) -> aws.cloudwatch.MetricAlarm:
    """The alarm notifies `actions` (SNS topic ARNs) when it fires and when it recovers."""
    return aws.cloudwatch.MetricAlarm(
        resource_name,
        name=name,
        alarm_description=spec.description,
        namespace=namespace,
        metric_name=spec.metric,
        dimensions=dict(dimensions),
        statistic=spec.statistic,
        period=window.period,
        evaluation_periods=window.evaluation_periods,
        datapoints_to_alarm=window.datapoints_to_alarm,
        threshold=spec.threshold,
        comparison_operator=spec.comparison,
        treat_missing_data=spec.treat_missing_data,
        alarm_actions=list(actions),
        ok_actions=list(actions),
        tags=dict(tags),
        opts=opts,
    )
