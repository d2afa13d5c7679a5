"""The Lua scripts of the dead-letter store (service.dlq.writer): every mutation is one
script, so it is atomic, and costs O(log n). KEYS are service.dlq.keys.entry_keys(): all in
one queue's hash slot, so the scripts run on Redis Cluster too."""

# Files one entry in a queue's layout: its entry and envelope, its three indexes and, when it
# is new there, its reason's count. KEYS[at] .. KEYS[at + 5] are that queue's
# keys.entry_keys(). The one place these writes are spelled: ADD and the legacy layout's
# migration (service.dlq.legacy_layout) both begin with it.
FILE_ENTRY = """
local function file_entry(at, id, score, entry, envelope, reason, new)
  redis.call('HSET', KEYS[at], id, entry)
  if envelope then
    redis.call('HSET', KEYS[at + 1], id, envelope)
  end
  redis.call('ZADD', KEYS[at + 2], score, id)
  redis.call('ZADD', KEYS[at + 3], score, id)
  redis.call('ZADD', KEYS[at + 4], score, id)
  if new then
    redis.call('HINCRBY', KEYS[at + 5], reason, 1)
  end
end
"""

# KEYS: entries, envelopes, queue index, reason index, task index, stats
# ARGV: id, score, entry json, envelope json, reason (the stats field)
ADD = (
    FILE_ENTRY
    + """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
local entry = cjson.decode(ARGV[3])
if existing then
  local old = cjson.decode(existing)
  entry['first_failure_at'] = old['first_failure_at']
  entry['occurrences'] = (old['occurrences'] or 1) + 1
  if old['reason'] ~= entry['reason'] or old['task_name'] ~= entry['task_name'] then
    return redis.error_reply('entry ' .. ARGV[1] .. ' exists with other reason/task')
  end
end
file_entry(1, ARGV[1], ARGV[2], cjson.encode(entry), ARGV[4], ARGV[5], not existing)
return existing and 0 or 1
"""
)

# Same KEYS as ADD plus KEYS[7]: the destination list (mode push, same slot) or the queue's
# claims hash (mode claim). ARGV: id, reason (the stats field), message, mode
# ('push' | 'claim' | 'purge')
REMOVE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if ARGV[4] == 'push' then
  redis.call('LPUSH', KEYS[7], ARGV[3])
elseif ARGV[4] == 'claim' then
  redis.call('HSET', KEYS[7], ARGV[1], ARGV[3])
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
if redis.call('HINCRBY', KEYS[6], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[6], ARGV[2])
end
return 1
"""
