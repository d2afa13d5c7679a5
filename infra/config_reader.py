"""Raw Pulumi config -> pydantic models, with every error naming the full config key
(`celery-fleet:queues.reports.maxReplicas`), never pydantic's own field paths."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails, PydanticCustomError

from service.errors import FleetError

PROJECT = "celery-fleet"

MEMORY = re.compile(r"^([1-9][0-9]*)(Mi|Gi)$")
CPU = re.compile(r"^([1-9][0-9]*m|[0-9]+(\.[0-9]+)?)$")
STORAGE = re.compile(r"^[1-9][0-9]*(Mi|Gi|Ti)$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# `repo[:tag]` or `repo[:tag]@sha256:<64 hex>`; CI deploys by digest, so a truncated or
# empty digest (`repo@`) must fail at preview, not as an ImagePullBackOff.
IMAGE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._/:-]*(@sha256:[0-9a-f]{64})?$")

# Every config object: keys in camelCase as in Pulumi.<stack>.yaml, a misspelt key an error.
CONFIG = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

T = TypeVar("T")


class InfraConfigError(FleetError):
    """The stack configuration is invalid; the message names the key."""


class ConfigModel(BaseModel):
    model_config = CONFIG


def config_key(path: str) -> str:
    return f"{PROJECT}:{path}"


def memory_mib(value: str) -> int:
    match = MEMORY.match(value)
    if not match:
        raise ValueError(value)
    return int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)


def key_error(key: str, message: str) -> PydanticCustomError:
    """An error for a validator to raise about field `key` (its alias) of the model it checks:
    the message then names that key, not just the object holding it."""
    return PydanticCustomError("fleet_config", message, {"key": key})


def validated(
    kind: type[T], data: Any, path: Sequence[str] = (), context: Mapping[str, Any] | None = None
) -> T:
    """`data` validated as `kind` (a model or pydantic dataclass) found at config `path`."""
    try:
        return TypeAdapter(kind).validate_python(data, context=dict(context or {}))
    except ValidationError as exc:
        lines = [_describe(kind, tuple(path), error) for error in exc.errors()]
        raise InfraConfigError("\n".join(lines)) from None


def _describe(kind: type[Any], path: tuple[str, ...], error: ErrorDetails) -> str:
    names, known = _walk(kind, [str(part) for part in error["loc"]])
    ctx = error.get("ctx") or {}
    if error["type"] == "fleet_config":
        names.append(str(ctx["key"]))
    elif error["type"].startswith("union_tag"):
        names.append(str(ctx.get("discriminator", "")).strip("'"))
    key = config_key(".".join((*path, *names)))
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"unknown config key {key}; known: {', '.join(known)}"
    if error["type"] in ("missing", "union_tag_not_found"):
        return f"missing required config key {key}"
    value = error.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
    return f"{key}: {error['msg']}{shown}"


def _walk(kind: Any, loc: list[str]) -> tuple[list[str], list[str]]:
    """The loc without pydantic's union tags, and the keys known in the object it ends in."""
    names: list[str] = []
    parent = kind
    for part in loc:
        members = _models(kind)
        if len(members) > 1:  # a tagged union: the loc names the tag before the field
            tagged = [m for m in members if _tag(m) == part]
            if tagged:
                kind = tagged[0]
                continue
        parent = kind
        names.append(part)
        kind = next((f.annotation for f in _fields(kind) if f.alias == part), None)
    others = getattr(_models(parent)[0], "OTHER_KEYS", ()) if _models(parent) else ()
    return names, sorted({*(str(f.alias) for f in _fields(parent)), *others})


def _models(kind: Any) -> list[Any]:
    args = (
        typing.get_args(kind)
        if typing.get_origin(kind) in (typing.Union, types.UnionType)
        else (kind,)
    )
    return [a for a in args if hasattr(a, "__pydantic_fields__")]


def _fields(kind: Any) -> list[Any]:
    models = _models(kind)
    return list(models[0].__pydantic_fields__.values()) if len(models) == 1 else []


def _tag(model: Any) -> str | None:
    field = getattr(model, "__pydantic_fields__", {}).get("mode")
    args = typing.get_args(field.annotation) if field is not None else ()
    return str(args[0]) if args else None
