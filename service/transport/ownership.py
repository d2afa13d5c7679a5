"""Who holds which message: one consumer id per channel (a worker process' consuming
connection; a new one after a reconnect), and its heartbeat.

Every message the pop script hands out is recorded under its consumer (`held_key`), and
each consumer keeps a heartbeat in its queues' consumers sets (`consumers_key`), written by
Redis' clock. The beat comes from a daemon thread of the process that owns the channel
(under prefork, the main process: it holds the connection and the unacked records while
the children run the tasks), so it keeps beating however long a task runs or an ETA waits,
and stops the moment the process dies. A sweep in any worker consuming the queue restores
the messages of a consumer whose beat is older than the dead-owner timeout
(service.transport.ownership_sweep), from the same thread, right after a beat, but only
once its own beats have gone through without a gap for one timeout (Heartbeat._may_judge:
after Redis refused writes, every live worker looks dead until its next beat)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Any

from kombu.utils.encoding import bytes_to_str
from redis.exceptions import NoScriptError

from service.catalog.naming import consumers_key, held_key, unacked_key, wake_key
from service.config.redis_faults import is_redis_unavailable
from service.transport.ownership_sweep import restore_dead

logger = logging.getLogger(__name__)

# Beats per dead-owner timeout: a consumer must miss this many in a row to be declared dead.
# Each beat is one script (4 commands inside Redis); dead consumers are restored by the next
# beat of any consumer of the queue: bound = dead-owner timeout + one beat interval.
BEATS_PER_TIMEOUT = 4
# Dead consumers one beat looks at per queue (the next beat takes the rest).
DEAD_PER_BEAT = 20


def new_consumer_id() -> str:
    # Host and pid for the operator reading Redis; the random part makes every process
    # instance distinct (a pid is reused across container restarts).
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


class Heartbeat:
    """The thread that keeps this process' consumers alive in Redis, one (queue, consumer)
    pair per queue a channel consumes, and restores the messages of the queues' dead
    consumers: each beat returns the consumers whose beat is older than the dead-owner
    timeout. A channel is one consumer: after a reconnect the new channel beats under a new
    id, so what the lost connection held comes back once the old id is stale (the process
    no longer knows those messages)."""

    def __init__(self) -> None:
        # (queue, consumer) -> the channel consuming (its QoS restores dead consumers').
        self.pairs: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._script: Any = None
        self.interval = 5.0
        self.timeout = 30.0
        # Per pair, by Redis' clock: its last beat that went through, and since when its
        # beats have gone through without a gap (service.transport.ownership docstring).
        self._last: dict[tuple[str, str], float] = {}
        self._since: dict[tuple[str, str], float] = {}

    def add(self, queue: str, consumer: str, channel: Any, client: Any, script: Any) -> None:
        """Beat for `consumer` in `queue` from now on (at once, so it is registered before
        its first pop)."""
        with self._lock:
            new = (queue, consumer) not in self.pairs
            self.pairs[(queue, consumer)] = channel
            self._client, self._script = client, script
            self.timeout = float(channel.fleet_dead_owner_timeout)
            self.interval = self.timeout / BEATS_PER_TIMEOUT
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="fleet-owner-heartbeat", daemon=True
                )
                self._thread.start()
        if new:
            try:
                self.beat(restore=False)
            except Exception as exc:
                if not is_redis_unavailable(exc):
                    raise
                # Full or gone at start: the thread beats again within an interval; a worker
                # never dies of it (its pops wait for Redis too).
                logger.warning("first heartbeat refused (%s); the heartbeat thread retries", exc)

    def discard(self, queue: str, consumer: str) -> None:
        """Stop beating for `consumer` in `queue` only."""
        with self._lock:
            self.pairs.pop((queue, consumer), None)
            self._last.pop((queue, consumer), None)
            self._since.pop((queue, consumer), None)

    def remove(self, consumer: str) -> None:
        """Stop beating for `consumer`; the thread ends when nothing is left to beat for."""
        with self._lock:
            self.pairs = {pair: ch for pair, ch in self.pairs.items() if pair[1] != consumer}
            self._last = {p: t for p, t in self._last.items() if p in self.pairs}
            self._since = {p: t for p, t in self._since.items() if p in self.pairs}
            idle = not self.pairs
        if idle:
            self.stop()

    def beat(self, restore: bool = True) -> None:
        with self._lock:
            pairs, client, script = dict(self.pairs), self._client, self._script
        if not pairs or client is None:
            return
        replies = self._send(client, script, list(pairs))
        own = {consumer for _, consumer in pairs}
        for (pair, channel), reply in zip(pairs.items(), replies, strict=True):
            if not self._may_judge(pair, float(bytes_to_str(reply[0]))) or not restore:
                continue
            queue = pair[0]
            for raw in reply[1::2]:
                consumer = bytes_to_str(raw)
                if consumer in own:  # our own beat late: Redis was slow to answer us
                    continue
                try:
                    restore_dead(channel.qos, client, queue, consumer, self.timeout)
                except Exception as exc:  # the next beat tries again
                    logger.warning("restoring %s's messages failed (%r)", consumer, exc)

    def _may_judge(self, pair: tuple[str, str], now: float) -> bool:
        """Record a beat that went through at `now` (Redis' clock); whether this consumer
        may judge the others: only once its own beats have gone through without a gap for
        one dead-owner timeout. A gap (Redis refusing writes: full under noeviction, MISCONF,
        read-only; a partition; a paused process) stopped the others' beats too, and their
        next beat may still be ahead: judging at once would restore live workers'
        messages. A newly started consumer waits the same (it cannot tell whether a gap has
        just ended)."""
        with self._lock:
            last = self._last.get(pair)
            if last is None or now - last > self.timeout / 2:
                self._since[pair] = now
            self._last[pair] = now
            return now - self._since.get(pair, now) >= self.timeout

    def _send(self, client: Any, script: Any, pairs: list[tuple[str, str]]) -> list[Any]:
        # One round trip; one single-key script per pair (each touches one slot). EVALSHA
        # directly: redis-py's pipelined Script adds a SCRIPT EXISTS to every round trip.
        args = (self.timeout, DEAD_PER_BEAT)
        for attempt in (1, 2):
            with client.pipeline(transaction=False) as pipe:
                for queue, consumer in pairs:
                    # execute_command: a cluster pipeline has no evalsha() (it routes a raw
                    # EVALSHA by its key like any command).
                    pipe.execute_command(
                        "EVALSHA", script.sha, 1, consumers_key(queue), consumer, *args
                    )
                try:
                    return list(pipe.execute())
                except NoScriptError:
                    if attempt == 2:
                        raise
                    client.script_load(script.script)
        return []

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


def deregister(channel: Any, queues: list[str]) -> None:
    """Leave the consumers set of each queue where `channel`'s consumer holds nothing (the
    transport's Channel: its consumer id, scripts and connections)."""
    consumer = channel.consumer_id
    try:
        with channel.conn_or_acquire() as client:
            for queue in queues:
                keys = [consumers_key(queue), held_key(queue, consumer)]
                keys += [unacked_key(queue), wake_key(queue)]
                channel.fleet_script("restore_held")(
                    keys=keys, args=[consumer, "leaving", "right"], client=client
                )
    except Exception as exc:  # unreachable Redis: the beats of the others clean up
        logger.warning("could not deregister consumer %s (%s)", consumer, exc)
