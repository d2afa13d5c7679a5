"""The Lua scripts of the lossless transport (service.transport), kept apart so the
channel code reads as Python."""

from __future__ import annotations

# Pop the next message AND record it as unacked, in one atomic step.
# KEYS: the lists in priority order, unacked hash, unacked index, quarantine hash, then the
#       wake-token lists of the polled queues.
# ARGV: now (the client clock kombu's own unacked index uses), number of lists.
# Reply: {list, item, delivery tag} for a tracked message; {list, item, ''} for bytes that
# cjson cannot read (held in quarantine until Python decides); {'', '', '', wrong-type
# lists...} when every list is empty.
# The unacked value is kombu's format, [message, exchange, routing_key], built by string
# concatenation so the message bytes are stored exactly as they were (cjson re-encoding
# would turn [] into {} and change numbers).
# redis.pcall: a key of the wrong type under a queue's name is skipped and reported, never an
# error that would stop the worker. RPOP comes first, so on a full noeviction Redis the
# script has already written when it reaches HSET and Redis lets it finish.
# On an empty poll the queues' wake tokens are stale (nothing waits behind them): drop them,
# which also bounds the token lists and clears a wrong-type key under their names.
POP_AND_TRACK = """
local n = tonumber(ARGV[2])
local bad = {}
for i = 1, n do
  local item = redis.pcall('RPOP', KEYS[i])
  if type(item) == 'table' then
    bad[#bad + 1] = KEYS[i]
  elseif item then
    local ok, msg = pcall(cjson.decode, item)
    local props = ok and type(msg) == 'table' and msg['properties']
    local tag = type(props) == 'table' and props['delivery_tag']
    if type(tag) == 'string' and tag ~= '' then
      local info = type(props['delivery_info']) == 'table' and props['delivery_info'] or {}
      local ex = type(info['exchange']) == 'string' and info['exchange'] or ''
      local rk = type(info['routing_key']) == 'string' and info['routing_key'] or ''
      redis.call('HSET', KEYS[n + 1], tag,
                 '[' .. item .. ',' .. cjson.encode(ex) .. ',' .. cjson.encode(rk) .. ']')
      redis.call('ZADD', KEYS[n + 2], ARGV[1], tag)
      return {KEYS[i], item, tag}
    end
    redis.call('HSET', KEYS[n + 3], KEYS[i] .. '|' .. redis.sha1hex(item), item)
    return {KEYS[i], item, ''}
  end
end
for j = n + 4, #KEYS do
  redis.call('DEL', KEYS[j])
end
return {'', '', '', unpack(bad)}
"""

# A quarantined item that Python reads after all (cjson refuses some JSON Python accepts,
# e.g. a lone surrogate escape): record it as unacked and release it from quarantine, in
# one step, before it is delivered.
# KEYS: quarantine hash, unacked hash, unacked index. ARGV: field, tag, record, now.
TRACK_QUARANTINED = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
return 1
"""
