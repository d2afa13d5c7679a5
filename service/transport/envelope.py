"""What a kombu Redis envelope must look like before the transport hands it to Celery."""

from __future__ import annotations

from typing import Any

from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from service.errors import FleetError


class MalformedEnvelope(FleetError, ValueError):
    """The bytes are not a kombu message the worker can process."""


def parse_envelope(item: bytes | str) -> dict[str, Any]:
    try:
        payload = loads(bytes_to_str(item))
    except Exception as exc:  # kombu's loads raises several types for garbage
        raise MalformedEnvelope(f"not JSON: {type(exc).__name__}") from None
    return check_envelope(payload)


def check_envelope(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise MalformedEnvelope(f"envelope is a JSON {type(payload).__name__}, not an object")
    properties = payload.get("properties")
    if not isinstance(properties, dict) or not isinstance(properties.get("delivery_tag"), str):
        raise MalformedEnvelope("envelope has no properties.delivery_tag")
    if not properties["delivery_tag"]:
        raise MalformedEnvelope("envelope has an empty properties.delivery_tag")
    if not isinstance(properties.get("delivery_info", {}), dict):
        raise MalformedEnvelope("envelope properties.delivery_info is not an object")
    if not isinstance(payload.get("headers", {}), dict | None):
        raise MalformedEnvelope("envelope headers is not an object")
    return payload
