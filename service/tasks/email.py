"""Email tasks: real SMTP sends through the host in settings.

Transient SMTP trouble (disconnects, 4xx replies, refused connections) is retried with
backoff; permanent 5xx replies go straight to the dead-letter queue."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from celery import shared_task

from service.config.settings import get_settings
from service.errors import PermanentTaskError, TransientTaskError
from service.tasks.base import FleetTask


def _send(message: EmailMessage) -> None:
    settings = get_settings()
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
            if settings.smtp_password is not None:
                smtp.login(settings.smtp_sender, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            raise TransientTaskError(f"SMTP {exc.smtp_code}: temporary failure") from None
        raise PermanentTaskError(f"SMTP {exc.smtp_code}: rejected") from None
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise TransientTaskError(f"SMTP unreachable: {type(exc).__name__}") from None


@shared_task(
    base=FleetTask,
    name="service.tasks.email.send_email",
    rate_limit="100/m",  # per worker: protects this worker's SMTP connection pool
    max_retries=5,
)
def send_email(to: str, subject: str, body: str) -> str:
    """Send one plain-text email; returns the Message-ID."""
    return _deliver(to, subject, body, message_id=str(send_email.request.id))


def _deliver(to: str, subject: str, body: str, message_id: str) -> str:
    if "@" not in to:
        raise PermanentTaskError(f"not an email address: {to!r}")
    message = EmailMessage()
    message["From"] = get_settings().smtp_sender
    message["To"] = to
    message["Subject"] = subject
    # The task id: a retried send keeps its Message-ID, so receivers can de-duplicate.
    message["Message-ID"] = f"<{message_id}@celery-fleet>"
    message.set_content(body)
    _send(message)
    return str(message["Message-ID"])


@shared_task(base=FleetTask, name="service.tasks.email.send_welcome_email", max_retries=5)
def send_welcome_email(to: str, name: str, user_tier: str = "free") -> str:
    """A templated email; premium users are routed to high_priority by the dynamic router."""
    body = f"Hello {name}, your {user_tier} plan is ready."
    return _deliver(to, f"Welcome, {name}", body, message_id=str(send_welcome_email.request.id))
