"""Masks secrets before they reach logs, the DLQ view, Flower or the CLI.

Structures are masked by key (any depth), and text inside them like free text. Free text
(reprs, JSON bodies, exception messages, tracebacks) is masked by scanning: URL credentials
(`scheme://user:pass@`) and the value after any key containing a sensitive word
(`'password': 'x'`, `"token": 12`, `api_key=abc`). Every scan is linear in the text, and
callers bound the text first (`mask_text`'s limit): a message is hostile input, and a
quadratic regex on 40 KB froze a worker for a minute."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
# Longest text masked at once; longer text is clipped first (logs, DLQ fields, reprs).
TEXT_LIMIT = 65_536
_TRUNCATED = "...[truncated]"
_IDENT = re.compile(r"[\w.-]*")
_USERINFO = re.compile(r"[^@/\s]*")
_SPACES = re.compile(r"[ \t]*")
_BARE_VALUE = re.compile(r"[^\s,;&)}\]'\"]*")
_AUTH_SCHEMES = ("bearer", "basic", "token", "digest")


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
    if isinstance(value, str) and ("=" in value or ":" in value):
        # Free text inside a value ("login failed: password=x", a URL with credentials).
        return mask_text(value, keys)
    return value


def redact_call(
    function: Any, args: Iterable[Any], kwargs: dict[str, Any], sensitive_keys: Iterable[str]
) -> tuple[list[Any], dict[str, Any]]:
    """Positional arguments masked by their parameter's name (`f("ann", "hunter2")` with a
    `password` parameter), keyword arguments by key; nested structures by key."""
    keys = tuple(k.lower() for k in sensitive_keys)
    positional = list(args)
    try:
        names = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        names = []
    masked = []
    for index, value in enumerate(positional):
        name = names[index] if index < len(names) else ""
        masked.append(MASK if name and is_sensitive(name, keys) else _redact(value, keys))
    return masked, _redact(dict(kwargs), keys)


def mask_credentials(text: str) -> str:
    """`scheme://user:password@host` -> `scheme://***@host`, in linear time."""
    parts: list[str] = []
    copied = 0
    start = text.find("://")
    while start != -1:
        begin = start + 3
        userinfo = _USERINFO.match(text, begin)
        end = userinfo.end() if userinfo else begin
        if start > 0 and text[start - 1].isalnum() and end < len(text) and text[end] == "@":
            parts.append(text[copied:begin])
            parts.append(MASK)
            copied = end
        start = text.find("://", max(end, begin))
    parts.append(text[copied:])
    return "".join(parts)


def _sensitive_words(sensitive_keys: Iterable[str]) -> re.Pattern[str] | None:
    words = sorted({k.lower() for k in sensitive_keys if k}, key=len, reverse=True)
    if not words:
        return None
    return re.compile("|".join(re.escape(w) for w in words), re.I)


def _quoted_end(text: str, start: int) -> int:
    """Index of the quote closing the string literal opened at `start`, or -1."""
    quote = text[start]
    position = start + 1
    while True:
        end = text.find(quote, position)
        if end == -1:
            return -1
        backslashes = 0
        while end - backslashes - 1 > start and text[end - backslashes - 1] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return end
        position = end + 1


def _value_span(text: str, start: int) -> tuple[int, int] | None:
    """(begin, end) of the value that starts at `start`, quotes excluded."""
    if start >= len(text):
        return None
    if text[start] in "'\"":
        end = _quoted_end(text, start)
        return (start + 1, end) if end != -1 else (start + 1, len(text))
    bare = _BARE_VALUE.match(text, start)
    end = bare.end() if bare else start
    if end == start:
        return None
    if text[start:end].lower() in _AUTH_SCHEMES:  # "Authorization: Bearer abc"
        following = _BARE_VALUE.match(text, _SPACES.match(text, end).end())  # type: ignore[union-attr]
        end = following.end() if following else end
    return start, end


def mask_sensitive_repr(text: str, sensitive_keys: Iterable[str]) -> str:
    """Masks the value after each key that contains a sensitive word, in reprs, JSON and
    `key=value` text, in linear time."""
    words = _sensitive_words(sensitive_keys)
    if words is None:
        return text
    parts: list[str] = []
    copied = 0
    position = 0
    while True:
        found = words.search(text, position)
        if found is None:
            break
        key_end = _IDENT.match(text, found.end()).end()  # type: ignore[union-attr]
        position = max(key_end, found.end())
        cursor = key_end
        if cursor < len(text) and text[cursor] in "'\"":
            cursor += 1  # the closing quote of a quoted key
        cursor = _SPACES.match(text, cursor).end()  # type: ignore[union-attr]
        if cursor >= len(text) or text[cursor] not in ":=" or text.startswith("==", cursor):
            continue
        cursor = _SPACES.match(text, cursor + 1).end()  # type: ignore[union-attr]
        span = _value_span(text, cursor)
        if span is None:
            continue
        begin, end = span
        parts.append(text[copied:begin])
        parts.append(MASK)
        copied = end
        position = max(position, end)
    parts.append(text[copied:])
    return "".join(parts)


def mask_text(text: str, sensitive_keys: Iterable[str], limit: int = TEXT_LIMIT) -> str:
    """Free text as it may be shown: clipped to `limit` characters, then masked."""
    if len(text) > limit:
        text = text[:limit] + _TRUNCATED
    return mask_credentials(mask_sensitive_repr(text, sensitive_keys))
