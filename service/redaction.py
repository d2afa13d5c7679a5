"""Masks values of sensitive keys (any depth) before they reach logs, the DLQ view or the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MASK = "***"


def is_sensitive(key: str, sensitive_keys: Iterable[str]) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in sensitive_keys)


def redact(value: Any, sensitive_keys: Iterable[str]) -> Any:
    keys = tuple(k.lower() for k in sensitive_keys)
    return _redact(value, keys)


def _redact(value: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {
            k: MASK if isinstance(k, str) and is_sensitive(k, keys) else _redact(v, keys)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, keys) for v in value]
    return value
