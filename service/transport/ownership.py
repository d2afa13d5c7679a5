"""Who holds which message: one consumer id per channel (a worker process' consuming
connection; a new one after a reconnect), and its heartbeat.

Every message the pop script hands out is recorded under its consumer (`held_key`), and
each consumer keeps a heartbeat in its queues' consumers sets (`consumers_key`), written by
Redis' clock. The beat comes from a daemon thread of the process that owns the channel
(under prefork, the main process: it holds the connection and the unacked records while
the children run the tasks), so it keeps beating however long a task runs or an ETA waits,
and stops the moment the process dies. A sweep in any worker consuming the queue restores
the messages of a consumer whose beat is older than the dead-owner timeout
(service.transport.qos)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Any

from redis.exceptions import NoScriptError

from service.catalog.naming import consumers_key

logger = logging.getLogger(__name__)

# Beats per dead-owner timeout: a consumer must miss this many in a row to be declared dead.
BEATS_PER_TIMEOUT = 6
# A dead-owner timeout shorter than this would let a Redis round trip look like a death.
MIN_DEAD_OWNER_TIMEOUT = 2.0


def new_consumer_id() -> str:
    # Host and pid for the operator reading Redis; the random part makes every process
    # instance distinct (a pid is reused across container restarts).
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


class Heartbeat:
    """The thread that keeps this process' consumers alive in Redis: one (queue, consumer)
    pair per queue a channel consumes. A channel is one consumer: after a reconnect the new
    channel beats under a new id, so what the lost connection held comes back once the old
    id is stale (the process no longer knows those messages)."""

    def __init__(self) -> None:
        self.pairs: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._script: Any = None
        self.interval = 5.0

    def add(self, queue: str, consumer: str, client: Any, script: Any, interval: float) -> None:
        """Beat for `consumer` in `queue` from now on (at once, so it is registered before
        its first pop)."""
        with self._lock:
            new = (queue, consumer) not in self.pairs
            self.pairs.add((queue, consumer))
            self._client, self._script, self.interval = client, script, interval
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="fleet-owner-heartbeat", daemon=True
                )
                self._thread.start()
        if new:
            self.beat()

    def remove(self, consumer: str) -> None:
        """Stop beating for `consumer`; the thread ends when nothing is left to beat for."""
        with self._lock:
            self.pairs = {pair for pair in self.pairs if pair[1] != consumer}
            idle = not self.pairs
        if idle:
            self.stop()

    def beat(self) -> None:
        with self._lock:
            pairs, client, script = sorted(self.pairs), self._client, self._script
        if not pairs or client is None:
            return
        # One round trip; one single-key script per pair (each touches one slot). EVALSHA
        # directly: redis-py's pipelined Script adds a SCRIPT EXISTS to every round trip.
        for attempt in (1, 2):
            with client.pipeline(transaction=False) as pipe:
                for queue, consumer in pairs:
                    pipe.evalsha(script.sha, 1, consumers_key(queue), consumer)
                try:
                    pipe.execute()
                    return
                except NoScriptError:
                    if attempt == 2:
                        raise
                    client.script_load(script.script)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:  # a Redis blip: the next beat tries again
                logger.warning("consumer heartbeat failed (%s); retrying", type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        self._thread = None


_process: Heartbeat | None = None


def process_heartbeat() -> Heartbeat:
    """This process' heartbeat (created on first use; a forked child gets its own)."""
    global _process
    if _process is None:
        _process = Heartbeat()
    return _process


def _forget_after_fork() -> None:
    global _process
    _process = None


os.register_at_fork(after_in_child=_forget_after_fork)
