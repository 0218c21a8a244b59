-- Record a failed run. ARGV: 4 worker, 5 job id, 6 error type, 7 error, 8 retry_at or
-- '' (no retry), 9 result ttl ms. Returns 'pending', 'dead', or nil (lease lost).
local me, id = ARGV[4], ARGV[5]
if not holds(id, me) then
  return false
end
local k = jkey(id)
redis.call('HSET', k, 'error_type', ARGV[6], 'error', ARGV[7])
ack(id)
local f = redis.call('HMGET', k, 'attempts', 'max_attempts')
local retried = ARGV[8] ~= '' and tonumber(f[1]) < tonumber(f[2])
note_attempt(id, retried and 'retried' or 'dead', ARGV[6], ARGV[7])
if retried then
  redis.call('HSET', k, 'state', 'pending', 'run_at', ARGV[8])
  redis.call('HDEL', k, 'worker', 'lease_until')
  redis.call('SADD', P .. 'failed', id)
  redis.call('INCR', P .. 'retried')
  schedule(id)
  return 'pending'
end
finish(id, 'dead', ARGV[9])
bury(id, ARGV[9])
return 'dead'
