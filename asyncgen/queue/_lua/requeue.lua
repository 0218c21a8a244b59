-- Run a dead or cancelled job again: pending now, attempts from 0, same payload, the
-- last error kept. ARGV: 3 job id. Returns 1, or 0 when the job is in another state or
-- one of its dependencies ended dead or cancelled (or is gone).
local id = ARGV[3]
local k = jkey(id)
local state = redis.call('HGET', k, 'state')
if state ~= 'dead' and state ~= 'cancelled' then
  return 0
end
local deps = cjson.decode(redis.call('HGET', k, 'depends_on') or '[]')
local waiting = 0
for _, dep in ipairs(deps) do
  local dstate = redis.call('HGET', jkey(dep), 'state')
  if dstate == 'dead' or dstate == 'cancelled' or not dstate then
    return 0
  elseif dstate ~= 'completed' then
    waiting = waiting + 1
  end
end
redis.call('ZREM', P .. state, id)
redis.call('PERSIST', k)
local idem = redis.call('HGET', k, 'idempotency_key')
if idem then
  redis.call('PERSIST', P .. 'idem:' .. idem)
end
redis.call('HSET', k, 'state', 'pending', 'attempts', '0', 'run_at', NOW)
redis.call('HDEL', k, 'finished_at', 'worker', 'lease_until', 'deadletter')
if redis.call('HEXISTS', k, 'error_type') == 1 then
  redis.call('SADD', P .. 'failed', id)
end
-- A member runs again: a group still waiting for its members waits for it too.
local group = redis.call('HGET', k, 'group')
if group and redis.call('SISMEMBER', P .. 'blocked', group) == 1 then
  redis.call('HINCRBY', jkey(group), 'waiting', 1)
end
if waiting > 0 then
  for _, dep in ipairs(deps) do
    if redis.call('HGET', jkey(dep), 'state') ~= 'completed' then
      redis.call('SADD', P .. 'dependents:' .. dep, id)
    end
  end
  redis.call('HSET', k, 'waiting', waiting)
  redis.call('SADD', P .. 'blocked', id)
else
  schedule(id)
end
return 1
