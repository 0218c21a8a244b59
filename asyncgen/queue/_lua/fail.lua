-- Record a failed run. ARGV: 3 worker, 4 job id, 5 error type, 6 error, 7 retry_at or
-- '' (no retry), 8 result ttl ms. Returns 'pending', 'dead', or nil (lease lost).
local me, id = ARGV[3], ARGV[4]
if not holds(id, me) then
  return false
end
local k = jkey(id)
redis.call('HSET', k, 'error_type', ARGV[5], 'error', ARGV[6])
ack(id)
local f = redis.call('HMGET', k, 'attempts', 'max_attempts')
local retried = ARGV[7] ~= '' and tonumber(f[1]) < tonumber(f[2])
note_attempt(id, retried and 'retried' or 'dead', ARGV[5], ARGV[6])
if retried then
  redis.call('HSET', k, 'state', 'pending', 'run_at', ARGV[7])
  redis.call('HDEL', k, 'worker', 'lease_until')
  redis.call('SADD', P .. 'failed', id)
  redis.call('INCR', P .. 'retried')
  schedule(id)
  return 'pending'
end
finish(id, 'dead', ARGV[8])
bury(id, ARGV[8])
return 'dead'
