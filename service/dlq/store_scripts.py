"""The Lua scripts of the dead-letter store (service.dlq.store): every mutation is one
script, so it is atomic, and costs O(log n). KEYS are service.dlq.keys.entry_keys(): all in
one queue's hash slot, so the scripts run on Redis Cluster too."""

# KEYS: entries, envelopes, queue index, reason index, task index, stats
# ARGV: id, score, entry json, envelope json, reason (the stats field)
ADD = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
local entry = cjson.decode(ARGV[3])
if existing then
  local old = cjson.decode(existing)
  entry['first_failure_at'] = old['first_failure_at']
  entry['occurrences'] = (old['occurrences'] or 1) + 1
  if old['reason'] ~= entry['reason'] or old['task_name'] ~= entry['task_name'] then
    return redis.error_reply('entry ' .. ARGV[1] .. ' exists with other reason/task')
  end
else
  redis.call('HINCRBY', KEYS[6], ARGV[5], 1)
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
return existing and 0 or 1
"""

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
