"""The Lua scripts of the dead-letter store (service.dlq.store): every mutation is one
script, so it is atomic, and costs O(log n). KEYS are service.dlq.keys.entry_keys()."""

# KEYS: entries, envelopes, queue index, global index, reason index, task index, stats
# ARGV: id, member, score, entry json, envelope json, stats field
ADD = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
local entry = cjson.decode(ARGV[4])
if existing then
  local old = cjson.decode(existing)
  entry['first_failure_at'] = old['first_failure_at']
  entry['occurrences'] = (old['occurrences'] or 1) + 1
  if old['reason'] ~= entry['reason'] or old['task_name'] ~= entry['task_name'] then
    return redis.error_reply('entry ' .. ARGV[1] .. ' exists with other reason/task')
  end
else
  redis.call('HINCRBY', KEYS[7], ARGV[6], 1)
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[2])
return existing and 0 or 1
"""

# Same KEYS as ADD plus KEYS[8]: the destination list (mode push) or the claims hash
# (mode claim). ARGV: id, member, stats field, message, mode ('push' | 'claim' | 'purge')
REMOVE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if ARGV[5] == 'push' then
  redis.call('LPUSH', KEYS[8], ARGV[4])
elseif ARGV[5] == 'claim' then
  redis.call('HSET', KEYS[8], ARGV[1], ARGV[4])
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('ZREM', KEYS[6], ARGV[2])
if redis.call('HINCRBY', KEYS[7], ARGV[3], -1) <= 0 then
  redis.call('HDEL', KEYS[7], ARGV[3])
end
return 1
"""
