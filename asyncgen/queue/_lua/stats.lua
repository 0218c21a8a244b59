-- Counts for statistics(). ARGV: 3 the time before which completed and cancelled
-- records have expired ('' when they never do). Ready and running come from the streams
-- (XLEN and XPENDING: acknowledged entries are deleted, so XLEN - pending = undelivered).
if ARGV[3] ~= '' then
  redis.call('ZREMRANGEBYSCORE', P .. 'completed', '-inf', '(' .. ARGV[3])
  redis.call('ZREMRANGEBYSCORE', P .. 'cancelled', '-inf', '(' .. ARGV[3])
end
local ready, running = 0, 0
for _, lane in ipairs(redis.call('ZRANGE', P .. 'lanes', 0, -1)) do
  local pel = redis.call('XPENDING', lane, GROUP)[1]
  ready = ready + redis.call('XLEN', lane) - pel
  running = running + pel
end
local workers = live_workers()
return {
  ready + redis.call('ZCOUNT', P .. 'delayed', '-inf', NOW) + redis.call('SCARD', P .. 'blocked'),
  redis.call('ZCOUNT', P .. 'delayed', '(' .. NOW, '+inf'),
  running,
  redis.call('ZCARD', P .. 'completed'),
  redis.call('SCARD', P .. 'failed'),
  redis.call('ZCARD', P .. 'dead'),
  redis.call('ZCARD', P .. 'cancelled'),
  tonumber(redis.call('GET', P .. 'retried') or '0'),
  workers,
}
