"""Where and how the fleet's pods run, as a platform team sets it in `Pulumi.<stack>.yaml`:
`pods` for every fleet pod, `queues.<name>.pods` on top of it for one worker pool,
`serviceAccount` for the pods' ServiceAccount. Each a pydantic model in YAML's camelCase,
unknown keys refused, so a typo fails the preview naming the key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, model_validator

from infra.config_reader import ConfigModel, key_error

# Label and annotation keys: an optional DNS-subdomain prefix and a name (Kubernetes'
# qualified-name rule); label values are at most 63 characters of the same alphabet.
QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# Annotations the program sets itself; a stack may not override them.
RESERVED_ANNOTATION_PREFIX = "celery-fleet/"

QualifiedName = Annotated[str, Field(pattern=QUALIFIED_NAME.pattern)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE.pattern)]
Annotations = dict[QualifiedName, str]


def _no_reserved(annotations: Mapping[str, str], key: str) -> None:
    for name in annotations:
        if name.startswith(RESERVED_ANNOTATION_PREFIX):
            raise key_error(key, f"{name!r}: {RESERVED_ANNOTATION_PREFIX}* is set by the program")


class Toleration(ConfigModel):
    key: QualifiedName | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: Annotated[StrictInt, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise key_error("value", "must be empty with operator Exists")
        if self.key is None and self.operator != "Exists":
            raise key_error("operator", "must be Exists when key is empty (tolerate every taint)")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise key_error("tolerationSeconds", "applies only to effect NoExecute")
        return self

    def manifest(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class Affinity(ConfigModel):
    """The Kubernetes `affinity` object, passed as written (the schema tests validate the
    rendered pods); only its three top-level keys are known here."""

    node_affinity: dict[str, Any] | None = None
    pod_affinity: dict[str, Any] | None = None
    pod_anti_affinity: dict[str, Any] | None = None

    def manifest(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


SpreadStrictness = Literal["ScheduleAnyway", "DoNotSchedule"]


class PodSettings(ConfigModel):
    """`pods` (every fleet pod) or `queues.<name>.pods` (one pool, over `pods`)."""

    node_selector: dict[QualifiedName, LabelValue] | None = None
    tolerations: tuple[Toleration, ...] | None = None
    affinity: Affinity | None = None
    priority_class_name: Annotated[str, Field(pattern=DNS_SUBDOMAIN.pattern)] | None = None
    annotations: Annotations | None = None
    # Zone spread of worker pools: a preference by default; DoNotSchedule keeps pods Pending
    # rather than crowd a zone (needs nodes in every zone to scale).
    topology_spread: SpreadStrictness | None = None

    @model_validator(mode="after")
    def _annotations(self) -> PodSettings:
        _no_reserved(self.annotations or {}, "annotations")
        return self

    def over(self, base: PodSettings) -> PodSettings:
        """These settings where set, `base` elsewhere; maps merge key by key."""
        merged: dict[str, Any] = {}
        for name in type(self).model_fields:
            mine, theirs = getattr(self, name), getattr(base, name)
            if isinstance(mine, dict) and isinstance(theirs, dict):
                merged[name] = {**theirs, **mine}
            else:
                merged[name] = theirs if mine is None else mine
        return PodSettings.model_construct(**merged)

    @property
    def spread(self) -> SpreadStrictness:
        return self.topology_spread or "ScheduleAnyway"


class ServiceAccountConfig(ConfigModel):
    """`serviceAccount`: annotations of the fleet pods' ServiceAccount, e.g. IAM roles for
    service accounts (`eks.amazonaws.com/role-arn`)."""

    annotations: Annotations = Field(default_factory=dict)
