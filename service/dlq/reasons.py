"""Why an entry is in the dead-letter queue (the `reason` label of metrics and filters)."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    MAX_RETRIES_EXCEEDED = "max_retries_exceeded"
    NON_RETRYABLE_ERROR = "non_retryable_error"
    SOFT_TIME_LIMIT = "soft_time_limit_exceeded"
    TIME_LIMIT = "time_limit_exceeded"
    UNKNOWN_TASK = "unknown_task"
    MALFORMED_BODY = "malformed_body"
    MALFORMED_ENVELOPE = "malformed_envelope"
    CONTENT_TYPE_REJECTED = "content_type_rejected"
    OVERSIZED_BODY = "oversized_body"
    INVALID_ARGUMENTS = "invalid_arguments"
    INVALID_MESSAGE = "invalid_message"
    # Its `expires` passed before it could run (FLEET_DLQ_EXPIRED=false drops it instead).
    EXPIRED = "expired"
