"""Checks that guard production stacks only: `(resource_type, props, context) -> [message]`.

The stack comes from the resource's URN (`urn:pulumi:<stack>::...`); a stack named `prod`
or `prod-<anything>` is production."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policy.pods import containers, get, pod_spec

Props = Mapping[str, Any]
DIGEST_REFERENCE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
SERVERLESS_CACHE = "aws:elasticache/serverlessCache:ServerlessCache"


@dataclass(frozen=True)
class Context:
    stack: str
    protect: bool = False

    @classmethod
    def from_urn(cls, urn: str, protect: bool = False) -> Context:
        # urn:pulumi:<stack>::<project>::<type>::<name>
        parts = urn.split(":", 3)
        stack = parts[2] if len(parts) > 2 and urn.startswith("urn:pulumi:") else ""
        return cls(stack=stack, protect=protect)

    @property
    def is_prod(self) -> bool:
        return self.stack == "prod" or self.stack.startswith("prod-")


ContextCheck = Callable[[str, Props, Context], list[str]]


def prod_images_pinned_by_digest(resource_type: str, props: Props, ctx: Context) -> list[str]:
    """A tag can be moved; a digest names the bytes CI built and dev ran."""
    if not ctx.is_prod:
        return []
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    out = []
    for c in containers(spec):
        image = str(get(c, "image") or "")
        if not DIGEST_REFERENCE.match(image):
            out.append(f"container {c.get('name', '?')} image {image!r} is not pinned by digest")
    return out


def prod_broker_durable(resource_type: str, props: Props, ctx: Context) -> list[str]:
    """The broker holds every queued task: in prod it keeps snapshots, takes a final one on
    deletion, and is `protect`ed against an accidental `pulumi destroy`. Every redis.mode:
    the replication group (cluster mode on or off) and the serverless cache (which takes no
    final snapshot through pulumi-aws: snapshots and protect)."""
    if not ctx.is_prod or resource_type not in (REPLICATION_GROUP, SERVERLESS_CACHE):
        return []
    kind = resource_type.rsplit(":", 1)[-1]
    out = []
    if resource_type == REPLICATION_GROUP and not get(props, "finalSnapshotIdentifier"):
        out.append(f"{kind} needs a finalSnapshotIdentifier in prod")
    retention = get(props, "snapshotRetentionLimit")
    if not isinstance(retention, int | float) or retention < 1:
        out.append(f"{kind} needs snapshotRetentionLimit >= 1 in prod")
    if not ctx.protect:
        out.append(f"{kind} must be protected in prod (redis.protect: true)")
    return out


CONTEXT_CHECKS: dict[str, tuple[str, ContextCheck]] = {
    "prod-images-pinned-by-digest": (
        "Production pods run images pinned by digest (repo@sha256:...), never a tag",
        prod_images_pinned_by_digest,
    ),
    "prod-broker-durable": (
        "The production broker (every redis.mode) keeps snapshots, a final snapshot where "
        "the resource takes one, and Pulumi protect",
        prod_broker_durable,
    ),
}
