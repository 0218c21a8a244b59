-- Delete finished jobs that ended before a cutoff, at most a batch of them.
-- ARGV: 3 cutoff (epoch seconds), 4 batch size. Returns {deleted, examined}.
local cutoff, batch = ARGV[3], tonumber(ARGV[4])
local deleted, examined = 0, 0
for _, state in ipairs({'completed', 'dead', 'cancelled'}) do
  local ids = redis.call('ZRANGEBYSCORE', P .. state, '-inf', '(' .. cutoff, 'LIMIT', 0, batch - examined)
  for _, id in ipairs(ids) do
    local k = jkey(id)
    local f = redis.call('HMGET', k, 'idempotency_key', 'deadletter')
    if f[1] and redis.call('GET', P .. 'idem:' .. f[1]) == id then
      redis.call('DEL', P .. 'idem:' .. f[1])
    end
    if f[2] then
      redis.call('XDEL', P .. 'deadletter', f[2])
    end
    deleted = deleted + redis.call('DEL', k) -- 0 when it had expired already
    redis.call('ZREM', P .. state, id)
    redis.call('ZREM', P .. 'groups', id)
    examined = examined + 1
  end
  if examined >= batch then
    return {deleted, examined}
  end
end
-- Lanes left empty are dropped (enqueue makes them again); so are the consumers of
-- workers that are gone and hold nothing, and the names of those workers.
for _, lane in ipairs(redis.call('ZRANGE', P .. 'lanes', 0, -1)) do
  if redis.call('XLEN', lane) == 0 then
    redis.call('DEL', lane)
    redis.call('ZREM', P .. 'lanes', lane)
  else
    for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', lane, GROUP)) do
      local name = field(c, 'name')
      if field(c, 'pending') == 0 and redis.call('EXISTS', P .. 'worker:' .. name) == 0 then
        redis.call('XGROUP', 'DELCONSUMER', lane, GROUP, name)
      end
    end
  end
end
live_workers()
return {deleted, examined}
