"""The base class of every fleet task: retry policy and dead-letter capture.

Failures are classified once, here: a TransientTaskError (or a type in `autoretry_for`) is
retried with exponential backoff and jitter until `max_retries`; anything else, or a retry
budget used up, is written to the dead-letter queue synchronously, inside the worker, before
Celery acknowledges the message (acks_late). If that write fails (Redis down or full), it is
retried with pauses, then the message is rejected with requeue so it comes back: a failed
task never vanishes, and never spins.

A task that fails because Redis itself is unavailable (service.config.redis_faults: down, full,
paused, loading) did nothing wrong: it is retried with backoff (up to REDIS_RETRY_LIMIT
times), never dead-lettered for it. When Redis refuses the retry's own publish, the message
is requeued instead of dropped (Celery rejects it without requeue), also when kombu
published it on a channel it had closed after a Redis error (both are Redis unavailable to
service.config.redis_faults)."""

from __future__ import annotations

import inspect
import json
import logging
import random
import time
from typing import Any, ClassVar

from celery import Task
from celery.exceptions import MaxRetriesExceededError, Reject, Retry, SoftTimeLimitExceeded

from service.config.redis_faults import is_redis_unavailable
from service.dlq import capture
from service.dlq.reasons import Reason
from service.dlq.request import FleetRequest
from service.errors import PermanentTaskError, TransientTaskError

logger = logging.getLogger(__name__)

# Pauses between DLQ write attempts inside the task (Redis down or full) before the message
# is requeued: a requeue without a pause ran the task again thousands of times a minute.
DLQ_WRITE_BACKOFF = (0.5, 1.0, 2.0, 4.0)
# A task whose own Redis access failed because Redis was unavailable is retried this many
# times (backoff up to REDIS_RETRY_MAX_DELAY s) before it is dead-lettered as
# max_retries_exceeded: at least ~10 minutes of outage.
REDIS_RETRY_LIMIT = 30
REDIS_RETRY_MAX_DELAY = 30.0


class FleetTask(Task[Any, Any]):
    """Shared policy: JSON-only, late ack, backoff with jitter, dead-lettering."""

    abstract = True
    # Dead-letters hard time-limit kills from the worker's main process. A class, not a dotted
    # path: Celery resolves it with symbol_by_name, which passes a class through
    # (celery/worker/strategy.py, default); the stubs type it as a path only.
    Request = FleetRequest  # type: ignore[assignment]
    acks_late = True
    reject_on_worker_lost = True
    # Exponential backoff with full jitter, capped, so a burst of failures does not retry in
    # lock-step and hammer the dependency that just failed.
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 5
    autoretry_for: ClassVar[tuple[type[BaseException], ...]] = (TransientTaskError,)
    # Checked by Celery at call time as well, so a wrong call fails in the caller.
    typing = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        bad_arguments = self._signature_problem(args, kwargs)
        if bad_arguments is not None:
            self._dead_letter(Reason.INVALID_ARGUMENTS, TypeError(bad_arguments), args, kwargs)
            raise PermanentTaskError(bad_arguments)
        try:
            return super().__call__(*args, **kwargs)
        except Retry:
            capture.note_retry(str(self.request.id))
            raise
        except Reject:
            raise
        except SoftTimeLimitExceeded as exc:
            self._dead_letter(Reason.SOFT_TIME_LIMIT, exc, args, kwargs)
            raise
        except Exception as exc:
            retries = int(self.request.retries or 0)
            if is_redis_unavailable(exc) and retries < REDIS_RETRY_LIMIT:
                # Redis, not the task: run it again later (raises Retry, or Reject(requeue)).
                delay = min(REDIS_RETRY_MAX_DELAY, 2.0**retries) * random.uniform(0.5, 1.0)
                self.retry(exc=exc, countdown=delay, max_retries=REDIS_RETRY_LIMIT)
            reason = self._reason_for(exc)
            if is_redis_unavailable(exc):
                reason = Reason.MAX_RETRIES_EXCEEDED
            self._dead_letter(reason, exc, args, kwargs)
            raise

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().retry(*args, **kwargs)
        except Reject as rejected:
            # Celery rejects WITHOUT requeue when the retry's publish fails: with Redis full
            # or gone (or its channel closed by kombu after such an error) that dropped the
            # message. Requeue it (the transport keeps the requeue until Redis takes it).
            if not getattr(rejected, "requeue", True) and is_redis_unavailable(rejected):
                logger.warning("retry could not be published (Redis unavailable); requeued")
                raise Reject(getattr(rejected, "reason", None), requeue=True) from None
            raise

    def _signature_problem(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        signature = self.__dict__.get("_run_signature")
        if signature is None:  # once per task object: this runs before every call
            signature = self.__dict__["_run_signature"] = inspect.signature(self.run)
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            return f"{self.name}: arguments do not fit the signature: {exc}"
        return None

    def _reason_for(self, exc: BaseException) -> Reason:
        if isinstance(exc, MaxRetriesExceededError):
            return Reason.MAX_RETRIES_EXCEEDED
        if isinstance(exc, PermanentTaskError):
            return Reason.NON_RETRYABLE_ERROR
        retryable = isinstance(exc, tuple(self.autoretry_for))
        if retryable:
            return Reason.MAX_RETRIES_EXCEEDED
        return Reason.NON_RETRYABLE_ERROR

    def _dead_letter_minimal(self, reason: Reason, failure: BaseException) -> bool:
        """The entry could not be built (not a Redis outage): write the minimal one."""
        try:
            body = json.dumps(
                [list(self.request.args or []), self.request.kwargs or {}], default=repr
            )
        except Exception:  # arguments even repr() cannot render
            body = ""
        try:
            capture.capture_minimal(
                reason,
                failure,
                self.request.id,
                self.name,
                self.request.delivery_info,
                body.encode("utf-8", "backslashreplace"),
                None,
            )
        except Exception:
            return False
        return True

    def _dead_letter(
        self, reason: Reason, exc: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        # Content Redis refuses never gets here (capture falls back to a minimal entry); what
        # does is Redis down or full, so wait for it a little, then requeue.
        for pause in (*DLQ_WRITE_BACKOFF, None):
            try:
                capture.capture_task_failure(self, self.request, reason, exc, args, kwargs)
                return
            except Exception as write_error:
                failure = write_error
            if not is_redis_unavailable(failure) and self._dead_letter_minimal(reason, failure):
                return
            if pause is None:
                break
            try:
                time.sleep(pause)
            except SoftTimeLimitExceeded:
                break
        logger.error("dead-letter write failed (%s); message requeued", type(failure).__name__)
        # Not acked: the message returns to the queue and is tried again later.
        raise Reject(
            f"dead-letter write failed ({type(failure).__name__}); requeued", requeue=True
        ) from None
