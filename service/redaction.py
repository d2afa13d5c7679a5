"""Masks values of sensitive keys (any depth) before they reach logs, the DLQ view or the CLI."""

from __future__ import annotations

import re
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


# user:password@ or :password@ in any URL-looking text (broker URLs in error messages).
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^@/\s]*)@", re.I)


def mask_credentials(text: str) -> str:
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}***@", text)


def mask_sensitive_repr(text: str, sensitive_keys: tuple[str, ...]) -> str:
    """Masks `'password': 'x'` pairs inside reprs (Celery logs kwargs as a repr string)."""
    if not sensitive_keys:
        return text
    words = "|".join(re.escape(k) for k in sensitive_keys)
    pattern = re.compile(
        rf"(?P<key>(['\"])[^'\"]*(?:{words})[^'\"]*\2\s*:\s*)(?P<q>['\"]).*?(?P=q)", re.I
    )
    return pattern.sub(lambda m: f"{m['key']}'***'", text)
