"""The broker transport: kombu's Redis transport made lossless (atomic pop-and-track), cheap
to leave idle (wake lists), and safe with bytes that are not messages (quarantine, then DLQ).

`register()` installs it for `redis://` and `rediss://`; the app factory calls it."""

from service.transport.channel import Transport, register

__all__ = ["Transport", "register"]
