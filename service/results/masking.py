"""Result records masked like DLQ entries before any backend writes them.

With `result_extended` Celery stores the call's positional and keyword arguments next to the
state, and for a failure the exception's arguments and the traceback. Those are the same
secrets the DLQ masks (service.redaction: positional values by their parameter's name, keys
containing a sensitive word, `key=value` and URL credentials in free text), so the record is
masked the same way. A task's own return value is stored as returned: masking it would change
what the caller reads, so a task must not return secrets.

The hook points are Celery's `store_result` (every state a worker writes goes through it:
success, failure, retry, revoked) and `encode_result` (the exception turned into the dict
`{exc_type, exc_message, exc_module}` that both the Redis and the database backends store)."""

from __future__ import annotations

import copy
from typing import Any

from celery import states

from service.config.settings import get_settings
from service.redaction import mask_text, redact, redact_call


def _keys() -> tuple[str, ...]:
    return get_settings().sensitive_keys


def mask_exception_args(args: Any, keys: tuple[str, ...]) -> Any:
    """The stored exception's arguments (`exc.args`): text masked as free text, structures
    by key, as the DLQ masks an exception message."""
    if isinstance(args, list | tuple):
        return [mask_text(a, keys) if isinstance(a, str) else redact(a, keys) for a in args]
    if isinstance(args, str):
        return mask_text(args, keys)
    return redact(args, keys)


def masked_request(app: Any, request: Any, keys: tuple[str, ...]) -> Any:
    """A copy of the task request whose args/kwargs are masked (the original is left alone:
    the worker still needs the real arguments, e.g. for a retry)."""
    if request is None or not hasattr(request, "args"):
        return request
    task = app.tasks.get(getattr(request, "task", None) or "")
    run = getattr(task, "run", None)
    args, kwargs = redact_call(
        run, getattr(request, "args", None) or (), getattr(request, "kwargs", None) or {}, keys
    )
    masked = copy.copy(request)
    masked.args, masked.kwargs = args, kwargs
    return masked


class MaskedResultsMixin:
    """Mixed in before a Celery backend class (see service.results.backends)."""

    app: Any

    def encode_result(self, result: Any, state: str) -> Any:
        encoded = super().encode_result(result, state)  # type: ignore[misc]
        exception = state in states.EXCEPTION_STATES and isinstance(encoded, dict)
        if exception and "exc_message" in encoded:
            encoded = dict(encoded)
            encoded["exc_message"] = mask_exception_args(encoded["exc_message"], _keys())
        return encoded

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        keys = _keys()
        if traceback:
            traceback = mask_text(traceback, keys)
        return super().store_result(  # type: ignore[misc]
            task_id,
            result,
            state,
            traceback=traceback,
            request=masked_request(self.app, request, keys),
            **kwargs,
        )
