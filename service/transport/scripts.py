"""The Lua scripts of the lossless transport (service.transport), kept apart so the
channel code reads as Python. Each is registered once per client and called by SHA
(redis-py's `register_script`: EVALSHA, and SCRIPT LOAD again on NOSCRIPT).

Times are Redis' own clock (`TIME`, seconds with microseconds): a worker's clock is never
read, so clock skew between hosts cannot make a live owner look dead."""

from __future__ import annotations

# Pop the next messages AND record them as unacked, owned by this consumer, in one atomic step.
# KEYS: the message lists in priority order (n), then per polled queue (m groups of 4): its
#       unacked hash, this consumer's held set, its consumers set, its wake list; then each
#       polled queue's quarantine hash (m, in the same order).
# ARGV: n, m, consumer id, pop time (the worker's clock: it only orders one consumer's own
#       messages for their restore, it is never compared with another host's clock), then
#       for each list the index (1..m) of its queue, then (optional, default 1) the most
#       messages to pop: the prefetch slots the worker's QoS has free.
# Reply: {list, item, tag, item, tag, ...}: up to that many messages, all from the first
# non-empty list (the most urgent), in queue order; tag '' for bytes that cjson cannot read
# (held in quarantine until Python decides). With a count of 1: {list, item, tag}.
# {'', '', '', wrong-type lists...} when every list is empty.
# One script call serves a batch: its fixed cost (EVALSHA, LMPOP, one HSET and one ZADD for
# all the records) is shared by the batch's tasks when the queue is full.
# Registering: a sweep forgets a consumer only when it holds nothing; a consumer dropped
# while alive (its beats were late) that pops and dies before its next beat would leave a
# held set nobody restores. So when this pop finds the consumer missing from the queue's
# consumers set it adds it, by Redis' clock (ZSCORE only: the common case costs one lookup).
# LMPOP (Redis 7) takes the first non-empty list in one command, from the RIGHT end like
# kombu's BRPOP (its producers LPUSH). A wrong-type key under a list's name makes LMPOP fail:
# then each list is RPOPped on its own with redis.pcall, skipping and reporting such keys,
# never an error that would stop the worker. The pop comes first, so on a full noeviction
# Redis the script has already written when it reaches HSET and Redis lets it finish.
# The unacked value is kombu's format, [message, exchange, routing_key], built by string
# concatenation so the message bytes are stored exactly as they were (cjson re-encoding
# would turn [] into {} and change numbers).
# On an empty poll the queues' wake tokens are stale (nothing waits behind them): drop them,
# which also bounds the token lists and clears a wrong-type key under their names.
POP_AND_TRACK = """
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local consumer = ARGV[3]
local popped_at = tonumber(ARGV[4])
local count = tonumber(ARGV[5 + n]) or 1

-- The string value of the one key `name` in the item, read without decoding it: nil when
-- the key is absent, occurs twice, or its value is not a plain string (then cjson decides).
-- A literal `"name": "` can only be JSON structure: inside a JSON string a quote is escaped.
local function only_string(item, name)
  local pattern = '"' .. name .. '": "'
  local at = string.find(item, pattern, 1, true)
  if not at or string.find(item, pattern, at + 1, true) then return nil end
  local from = at + #pattern
  local to = string.find(item, '"', from, true)
  if not to then return nil end
  local value = string.sub(item, from, to - 1)
  if string.find(value, '\\\\', 1, true) then return nil end
  return value
end

local function fields(item)
  -- kombu writes `"key": "value"` (json.dumps' separators): most messages are read by plain
  -- string search, far cheaper for Redis than decoding the whole message.
  local tag = only_string(item, 'delivery_tag')
  local ex = only_string(item, 'exchange')
  local rk = only_string(item, 'routing_key')
  if tag and ex and rk then return tag, ex, rk end
  local ok, msg = pcall(cjson.decode, item)
  local props = ok and type(msg) == 'table' and msg['properties']
  tag = type(props) == 'table' and props['delivery_tag']
  if type(tag) ~= 'string' then return nil end
  local info = type(props['delivery_info']) == 'table' and props['delivery_info'] or {}
  ex = type(info['exchange']) == 'string' and info['exchange'] or ''
  rk = type(info['routing_key']) == 'string' and info['routing_key'] or ''
  return tag, ex, rk
end

-- Record the items popped from list i: one HSET and one ZADD for the whole batch. Scores
-- rise by a microsecond per item, so a restore puts them back in queue order. Bytes cjson
-- cannot read wait in the quarantine hash of the list's own queue (its slot on a cluster).
local function track(i, items)
  local q = tonumber(ARGV[4 + i])
  local base = n + 4 * (q - 1)
  local quarantine = KEYS[n + 4 * m + q]
  local records, held, reply = {}, {}, {KEYS[i]}
  for j, item in ipairs(items) do
    local tag, ex, rk = fields(item)
    if tag and tag ~= '' then
      records[#records + 1] = tag
      records[#records + 1] = '[' .. item .. ',' .. cjson.encode(ex) .. ','
                              .. cjson.encode(rk) .. ']'
      held[#held + 1] = popped_at + (j - 1) / 1000000
      held[#held + 1] = tag
      reply[#reply + 1] = item
      reply[#reply + 1] = tag
    else
      redis.call('HSET', quarantine, KEYS[i] .. '|' .. redis.sha1hex(item), item)
      reply[#reply + 1] = item
      reply[#reply + 1] = ''
    end
  end
  if #records > 0 then
    redis.call('HSET', KEYS[base + 1], unpack(records))
    redis.call('ZADD', KEYS[base + 2], unpack(held))
    if not redis.call('ZSCORE', KEYS[base + 3], consumer) then
      local t = redis.call('TIME')
      redis.call('ZADD', KEYS[base + 3], 'NX', t[1] + t[2] / 1000000, consumer)
    end
  end
  return reply
end

local args = {'LMPOP', n}
for i = 1, n do args[#args + 1] = KEYS[i] end
args[#args + 1] = 'RIGHT'
args[#args + 1] = 'COUNT'
args[#args + 1] = count
local popped = redis.pcall(unpack(args))
if type(popped) == 'table' and popped[1] then
  for i = 1, n do
    if KEYS[i] == popped[1] then return track(i, popped[2]) end
  end
end
local bad = {}
if type(popped) == 'table' and popped['err'] then
  for i = 1, n do
    local items = redis.pcall('RPOP', KEYS[i], count)
    if type(items) == 'table' and items['err'] then
      bad[#bad + 1] = KEYS[i]
    elseif items then
      return track(i, items)
    end
  end
end
for q = 1, m do
  redis.call('DEL', KEYS[n + 4 * q])
end
return {'', '', '', unpack(bad)}
"""

# A quarantined item that Python reads after all (cjson refuses some JSON Python accepts,
# e.g. a lone surrogate escape): record it as unacked and owned and release it from
# quarantine, in one step, before it is delivered.
# KEYS: quarantine hash, unacked hash, held set, consumers set. ARGV: field, tag, record,
# consumer id.
TRACK_QUARANTINED = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
local t = redis.call('TIME')
local now = t[1] + t[2] / 1000000
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], now, ARGV[2])
redis.call('ZADD', KEYS[4], 'NX', now, ARGV[4])
return 1
"""

# A consumer's heartbeat, by Redis' clock, and the queue's consumers whose heartbeat is
# older than the dead-owner timeout (the beat doubles as the dead-owner check: one command
# per beat, which is most of an idle worker's Redis cost).
# KEYS: the queue's consumers set. ARGV: consumer id, timeout (s), most to return.
# Reply: {now, id, last beat, id, last beat, ...}: Redis' time of this beat (the caller
# checks that its own beats went through without a gap: service.transport.ownership), then
# the dead ones.
HEARTBEAT = """
local t = redis.call('TIME')
local now = t[1] + t[2] / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
local reply = redis.call('ZRANGE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])),
                         'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]), 'WITHSCORES')
table.insert(reply, 1, tostring(now))
return reply
"""

# Put messages a consumer held back into their lists, each exactly once.
# KEYS: consumers set, the consumer's held set, unacked hash, wake list, target lists...
# ARGV: consumer id, mode, end ('left' or 'right'), then (tag, target list index from 1,
#       message) triples.
# mode: a number = dead-owner timeout: restore only if the consumer's heartbeat is older
#       (a live owner's messages are never restored; checked here, atomically), and forget
#       the consumer once it holds nothing; 'owner': the consumer itself gives messages
#       back (shutdown, requeue); 'leaving': as 'owner', then forget the consumer if it
#       holds nothing.
# A tag whose record is gone (acked, or restored by another sweep meanwhile) is skipped: the
# HDEL that finds the record is what restores it, so two sweeps never both push it.
# Reply: {restored, last beat or '', now}; restored is -1 when the owner is alive.
RESTORE_HELD = """
local t = redis.call('TIME')
local now = t[1] + t[2] / 1000000
local mode = ARGV[2]
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
local timeout = tonumber(mode)
if timeout and beat and tonumber(beat) >= now - timeout then
  return {-1, beat, tostring(now)}
end
local push = ARGV[3] == 'left' and 'LPUSH' or 'RPUSH'
local restored = 0
for i = 4, #ARGV, 3 do
  if redis.call('HDEL', KEYS[3], ARGV[i]) == 1 then
    redis.call(push, KEYS[4 + tonumber(ARGV[i + 1])], ARGV[i + 2])
    restored = restored + 1
  end
  redis.call('ZREM', KEYS[2], ARGV[i])
end
if restored > 0 then
  redis.call('LPUSH', KEYS[4], '1')
end
if mode ~= 'owner' and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return {restored, beat or '', tostring(now)}
"""
