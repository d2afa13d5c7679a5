"""A kombu Redis message whose construction never raises.

kombu decodes the body (base64 and friends) while it builds the message object, before any
consumer code runs; a body that is not valid for its declared `body_encoding`, an unknown
encoding or a body that is not a string raised there and stopped the worker. Here such a
message keeps its raw body and carries the error, which kombu hands to the consumer's
`on_decode_error`: the worker dead-letters it instead of dying. Missing delivery-info fields
kombu's QoS reads are filled in (the stored message keeps its original bytes)."""

from __future__ import annotations

import json
import sys
from typing import Any

from kombu.message import Message as BaseMessage
from kombu.transport import virtual


def raw_body_bytes(body: Any) -> bytes:
    """The body as it sat in the envelope, as bytes, whatever its JSON type."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "backslashreplace")
    return json.dumps(body, default=repr).encode()


class SafeMessage(virtual.Message):
    def __init__(self, payload: dict[str, Any], channel: Any = None, **kwargs: Any) -> None:
        try:
            super().__init__(payload, channel=channel, **kwargs)
            self._complete_delivery_info()
            return
        except Exception:
            error = sys.exc_info()
        properties = payload.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        headers = payload.get("headers")
        info = properties.get("delivery_info")
        raw: Any = raw_body_bytes(payload.get("body"))
        BaseMessage.__init__(
            self,
            body=raw,
            channel=channel,
            delivery_tag=properties.get("delivery_tag"),
            content_type=payload.get("content-type"),
            content_encoding=payload.get("content-encoding"),
            headers=headers if isinstance(headers, dict) else {},
            properties=properties,
            delivery_info=info if isinstance(info, dict) else {},
        )
        self._raw = payload
        self._complete_delivery_info()
        # kombu's Consumer re-raises errors[0] into on_decode_error before on_message.
        self.errors = [error]

    def _complete_delivery_info(self) -> None:
        # kombu's Redis QoS indexes delivery_info['exchange'] and ['routing_key'] as soon as
        # the message arrives; a message without them raised KeyError there, which the
        # worker took for a lost connection, and the message came back forever.
        if not isinstance(self.delivery_info, dict):
            self.delivery_info = {}
        self.delivery_info.setdefault("exchange", "")
        self.delivery_info.setdefault("routing_key", "")
