"""kombu's binding tables on Redis Cluster, each write in one slot.

kombu keeps an exchange's bindings in `_kombu.binding.<exchange>` (a set) and, for queues
that expire (Celery's pidbox and reply queues: `celery inspect`/`control`), a deadline per
exchange in ONE global sorted set `_kombu.binding_deadlines`, written by a script that also
adds the binding: two slots, CROSSSLOT on a cluster; its sweep deletes tables it computes
inside the script, which a cluster refuses too. Here every key of an exchange's bindings
shares the slot of its table: the deadline is `{_kombu.binding.<exchange>}:deadline` (a
number, ms by Redis' clock) and the permanent set `{_kombu.binding.<exchange>}:permanent`
(the tag is the table's whole name, so both hash like the table itself). A channel sweeps
the exchanges it knows (each worker declares the pidbox exchanges it uses), one script per
exchange."""

from __future__ import annotations

from typing import Any

TABLE = "_kombu.binding.%s"
PERMANENT = "{_kombu.binding.%s}:permanent"
DEADLINE = "{_kombu.binding.%s}:deadline"

# KEYS: table, deadline. ARGV: member, ttl (ms). The deadline only moves forward.
REFRESH = """
redis.call('SADD', KEYS[1], ARGV[1])
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local until_ms = ms + tonumber(ARGV[2])
local current = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if until_ms > current then
  redis.call('SET', KEYS[2], until_ms)
end
"""

# KEYS: table, permanent set, deadline. A table whose deadline passed goes, unless a queue
# without x-expires is bound to it (its permanent set); the deadline goes either way.
SWEEP = """
local deadline = tonumber(redis.call('GET', KEYS[3]) or '')
if not deadline then return 0 end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if deadline > ms then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
end
redis.call('DEL', KEYS[3])
return 1
"""


class ClusterBindings:
    """Mixed into the cluster channel, before kombu's Redis channel (whose attributes and
    helpers it uses: _expires, typeof, state, conn_or_acquire)."""

    keyprefix_queue = TABLE
    keyprefix_binding_permanent = PERMANENT

    def _fleet_binding_script(self: Any, name: str) -> Any:
        scripts = self.__dict__.setdefault("_fleet_binding_scripts", {})
        if name not in scripts:
            with self.conn_or_acquire() as client:
                scripts[name] = client.register_script(REFRESH if name == "refresh" else SWEEP)
        return scripts[name]

    def _fleet_refresh(self: Any, exchange: str, member: str, queue: str) -> None:
        with self.conn_or_acquire() as client:
            self._fleet_binding_script("refresh")(
                keys=[TABLE % exchange, DEADLINE % exchange],
                args=[member, self._binding_ttl(queue)],
                client=client,
            )

    def _queue_bind(self: Any, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        if queue not in self._expires:
            # kombu's: two SADDs, one key each (a cluster pipeline routes them apart).
            super()._queue_bind(exchange, routing_key, pattern, queue)  # type: ignore[misc]
            return
        if self.typeof(exchange).type == "fanout":
            self._fanout_queues[queue] = (exchange, routing_key.replace("#", "*"))
        member = self.sep.join([routing_key or "", pattern or "", queue or ""])
        self._fleet_refresh(exchange, member, queue)

    def _refresh_bindings(self: Any, queues: list[str]) -> None:
        for queue in queues:
            for exchange, routing_key, args in self.state.queue_bindings(queue):
                _, pattern, _ = self.typeof(exchange).prepare_bind(
                    queue, exchange, routing_key, args
                )
                member = self.sep.join([routing_key or "", pattern or "", queue])
                self._fleet_refresh(exchange, member, queue)

    def sweep_bindings(self: Any, limit: int = 100) -> int:
        swept = 0
        with self.conn_or_acquire() as client:
            for exchange in list(self.state.exchanges)[:limit]:
                keys = [TABLE % exchange, PERMANENT % exchange, DEADLINE % exchange]
                swept += int(self._fleet_binding_script("sweep")(keys=keys, client=client))
        return swept
