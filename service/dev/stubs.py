"""Local stand-ins for what the example tasks talk to, so every path runs offline: an SMTP
sink for the email tasks and an "external API" for analytics.enrich_event. They run as
threads of `fleet dev` (they die with it) and count what they receive: the API's arrival
times show the cluster-wide rate limit from the outside."""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Recipients starting with this get one 451 (temporary failure) per message: the task
# retries and the second attempt is delivered.
FLAKY_RECIPIENT_PREFIX = "flaky"


@dataclass
class Mailbox:
    delivered: int = 0
    deferred: int = 0
    _deferred_ids: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, recipients: Sequence[str], message_id: str) -> bool:
        """True to accept the message, False to answer 451 this time."""
        with self._lock:
            flaky = any(r.lower().startswith(FLAKY_RECIPIENT_PREFIX) for r in recipients)
            if flaky and message_id not in self._deferred_ids:
                self._deferred_ids.add(message_id)
                self.deferred += 1
                return False
            self.delivered += 1
            return True


class _SMTPHandler(socketserver.StreamRequestHandler):
    server: _SMTPServer

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._reply("220 fleet-dev SMTP sink")
        recipients: list[str] = []
        while line := self.rfile.readline(8192):
            command = line.decode("utf-8", "replace").strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self._reply("250 fleet-dev")
            elif verb == "MAIL":
                recipients = []
                self._reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[-1].strip(" <>"))
                self._reply("250 OK")
            elif verb == "DATA":
                self._reply("354 End data with <CR><LF>.<CR><LF>")
                message_id = self._read_data()
                if self.server.mailbox.decide(recipients, message_id):
                    self._reply("250 OK delivered")
                else:
                    self._reply("451 try again later (fleet dev: a deliberate deferral)")
            elif verb in ("RSET", "NOOP"):
                self._reply("250 OK")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 command not implemented")

    def _read_data(self) -> str:
        message_id = ""
        while line := self.rfile.readline(65536):
            if line in (b".\r\n", b".\n"):
                break
            if line.lower().startswith(b"message-id:"):
                message_id = line.split(b":", 1)[1].strip().decode("utf-8", "replace")
        return message_id


class _SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    mailbox: Mailbox


@dataclass
class ApiLog:
    """Arrival times of calls to the stub API."""

    times: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self) -> None:
        with self._lock:
            self.times.append(time.time())

    def max_in_window(self, window: float) -> int:
        """The most calls that arrived within any `window` seconds."""
        with self._lock:
            return max_in_window(self.times, window)


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most events within any `window` seconds (a half-open sliding window)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


class _ApiHandler(BaseHTTPRequestHandler):
    server: _ApiServer

    def do_GET(self) -> None:
        self.server.api_log.record()
        body = json.dumps({"path": self.path, "score": len(self.path) % 10}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the live view shows the figures; no per-request lines on the terminal


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    api_log: ApiLog


@dataclass
class Stubs:
    mailbox: Mailbox
    api_log: ApiLog
    smtp_port: int
    api_url: str
    _servers: list[socketserver.BaseServer]

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


def start_stubs(smtp_port: int, api_port: int, host: str = "127.0.0.1") -> Stubs:
    smtp = _SMTPServer((host, smtp_port), _SMTPHandler)
    smtp.mailbox = Mailbox()
    api = _ApiServer((host, api_port), _ApiHandler)
    api.api_log = ApiLog()
    for server in (smtp, api):
        threading.Thread(target=server.serve_forever, args=(0.2,), daemon=True).start()
    return Stubs(
        smtp.mailbox, api.api_log, smtp_port, f"http://{host}:{api_port}/enrich", [smtp, api]
    )
