"""Typed, validating access to raw Pulumi config objects: every error names the full key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar, get_args

from service.errors import FleetError

PROJECT = "celery-fleet"

MEMORY = re.compile(r"^([1-9][0-9]*)(Mi|Gi)$")
CPU = re.compile(r"^([1-9][0-9]*m|[0-9]+(\.[0-9]+)?)$")
STORAGE = re.compile(r"^[1-9][0-9]*(Mi|Gi|Ti)$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# `repo[:tag]` or `repo[:tag]@sha256:<64 hex>`; CI deploys by digest, so a truncated or
# empty digest (`repo@`) must fail at preview, not as an ImagePullBackOff.
IMAGE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._/:-]*(@sha256:[0-9a-f]{64})?$")


class InfraConfigError(FleetError):
    """The stack configuration is invalid; the message names the key."""


T = TypeVar("T")


def config_key(path: str) -> str:
    return f"{PROJECT}:{path}"


def memory_mib(value: str) -> int:
    match = MEMORY.match(value)
    if not match:
        raise ValueError(value)
    return int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)


class Reader:
    """Typed access to one config object; every error names `celery-fleet:<path>.<field>`."""

    def __init__(self, raw: Any, path: str) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise InfraConfigError(
                f"{config_key(path)} must be an object, got {type(raw).__name__}"
            )
        self.raw: Mapping[str, Any] = raw
        self.path = path

    def key(self, name: str) -> str:
        return config_key(f"{self.path}.{name}" if self.path else name)

    def only(self, *known: str) -> None:
        for name in self.raw:
            if name not in known:
                raise InfraConfigError(
                    f"unknown config key {self.key(name)}; known: {', '.join(sorted(known))}"
                )

    def _get(self, name: str, kind: type[T], default: T | None, required: bool) -> T | None:
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise InfraConfigError(f"missing required config key {self.key(name)}")
            return default
        if kind is int and isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if kind is bool and isinstance(value, str) and value in ("true", "false"):
            value = value == "true"
        if kind is int and isinstance(value, bool):
            raise InfraConfigError(f"{self.key(name)} must be an integer, got {value!r}")
        if not isinstance(value, kind):
            raise InfraConfigError(
                f"{self.key(name)} must be {kind.__name__}, got {type(value).__name__} {value!r}"
            )
        return value

    def text(
        self,
        name: str,
        default: str | None = None,
        *,
        pattern: re.Pattern[str] | None = None,
        required: bool = False,
    ) -> str | None:
        value = self._get(name, str, default, required)
        if value is not None and pattern is not None and not pattern.match(value):
            raise InfraConfigError(f"{self.key(name)}: {value!r} must match {pattern.pattern}")
        return value

    def req_str(self, name: str, *, pattern: re.Pattern[str] | None = None) -> str:
        value = self.text(name, pattern=pattern, required=True)
        assert value is not None
        return value

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self._get(name, int, default, False)
        assert value is not None
        if value < minimum:
            raise InfraConfigError(f"{self.key(name)} must be >= {minimum}, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name, bool, default, False)
        assert value is not None
        return value

    def choice(self, name: str, options: Any, default: str | None = None) -> str:
        allowed: tuple[str, ...] = get_args(options)
        value = self.text(name, default, required=default is None)
        if value not in allowed:
            raise InfraConfigError(
                f"unknown {self.key(name)} {value!r}; expected one of: {', '.join(allowed)}"
            )
        assert value is not None
        return value

    def str_list(self, name: str) -> tuple[str, ...]:
        value = self.raw.get(name)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise InfraConfigError(f"{self.key(name)} must be a non-empty list of strings")
        return tuple(value)

    def obj(self, name: str) -> Reader:
        return Reader(self.raw.get(name), f"{self.path}.{name}" if self.path else name)
