"""`fleet exporter`: queue lengths, oldest task age and DLQ sizes for Prometheus and the
autoscalers. Serves /metrics (a dedicated registry: no process/platform collectors) and
/healthz; blocks until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Iterable
from functools import partial
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from service.catalog.queues import CATALOG
from service.config.redis_client import RedisClient, connect
from service.config.settings import FleetSettings, get_settings
from service.errors import FleetError
from service.exporter.collector import QueueCollector
from service.exporter.queue_stats import QueueStats, read_queue_stats

logger = logging.getLogger(__name__)

# Below Prometheus' default 10 s scrape timeout, so a hung Redis shows as up=0, not as a
# failed scrape with no data at all.
REDIS_TIMEOUT_SECONDS = 2.0


def exporter_redis(url: str, timeout: float = REDIS_TIMEOUT_SECONDS) -> RedisClient:
    # One immediate retry when a connection drops mid-scrape (failover, restart); none on
    # timeouts, which would double the worst-case scrape time.
    retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    return connect(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=retry,
        client_name="fleet-exporter",
    )


def secrets_of(settings: FleetSettings) -> list[str]:
    """Strings that must never reach a log line: the Redis URLs and their passwords."""
    found: list[str] = []
    for secret in (settings.broker_url, settings.dlq_url):
        if secret is None:
            continue
        url = secret.get_secret_value()
        found.append(url)
        password = urlsplit(url).password
        if password:
            found.append(password)
    return sorted(set(found), key=len, reverse=True)  # the URL before the password inside it


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class LazyClient:
    """A client made on first use: RedisCluster reads the topology when it is built, so a
    cluster down at start would otherwise stop the exporter instead of reporting up 0."""

    def __init__(self, url: str, timeout: float) -> None:
        self._url, self._timeout = url, timeout
        self._client: RedisClient | None = None

    def get(self) -> RedisClient:
        if self._client is None:
            self._client = exporter_redis(self._url, self._timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def build_collector(
    settings: FleetSettings, timeout: float = REDIS_TIMEOUT_SECONDS
) -> tuple[QueueCollector, list[LazyClient]]:
    """The collector and the clients it owns (the caller closes them)."""
    broker_url = settings.broker_url.get_secret_value()
    broker = LazyClient(broker_url, timeout)
    dlq = broker
    if settings.dlq_redis_url != broker_url:
        dlq = LazyClient(settings.dlq_redis_url, timeout)

    def read() -> dict[str, QueueStats]:
        return read_queue_stats(broker.get(), settings, CATALOG, dlq_client=dlq.get())

    collector = QueueCollector(read, partial(scrub, secrets=secrets_of(settings)))
    return collector, list({id(c): c for c in (broker, dlq)}.values())


def make_app(registry: CollectorRegistry) -> WSGIApplication:
    metrics = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/healthz":
            # The process answers; Redis health is celery_exporter_up, not a reason to restart.
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if path in ("/", "/metrics"):
            body: Iterable[bytes] = metrics(environ, start_response)
            return body
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics or /healthz\n"]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow client must not block shutdown


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http %s " + format, self.address_string(), *args)


def _server_class(address: str, port: int) -> type[_ThreadingServer]:
    infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family = infos[0][0]
    return type("ExporterServer", (_ThreadingServer,), {"address_family": family})


def serve(port: int, address: str = "0.0.0.0", timeout: float = REDIS_TIMEOUT_SECONDS) -> None:
    """Serve until SIGTERM or SIGINT, then return (exit code 0)."""
    settings = get_settings()
    collector, clients = build_collector(settings, timeout)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        server = make_server(
            address,
            port,
            make_app(registry),
            server_class=_server_class(address, port),
            handler_class=_QuietHandler,
        )
    except OSError as exc:
        raise FleetError(f"exporter cannot listen on {address}:{port}: {exc.strerror}") from None

    # A plain flag: a signal handler must not take locks (Event.set() from a handler can
    # deadlock against Event.wait() in the same thread) nor log (reentrant stream writes).
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=server.serve_forever, name="exporter-http", daemon=True)
    thread.start()
    logger.info(
        "exporter serving /metrics and /healthz on %s:%d for %d queues",
        address,
        server.server_port,
        len(CATALOG),
    )
    try:
        while not received:
            time.sleep(0.2)
        logger.info("exporter stopping on %s", signal.Signals(received[0]).name)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for client in clients:
            client.close()
