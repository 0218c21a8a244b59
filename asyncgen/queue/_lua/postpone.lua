-- Give a running job back without using an attempt. ARGV: 3 worker, 4 job id, 5 run_at,
-- 6 error type, 7 error. Returns 1, or 0 when the worker had lost the lease.
local me, id = ARGV[3], ARGV[4]
if not holds(id, me) then
  return 0
end
local k = jkey(id)
note_attempt(id, 'postponed', ARGV[6], ARGV[7])
ack(id)
redis.call('HSET', k, 'state', 'pending', 'run_at', ARGV[5], 'error_type', ARGV[6],
  'error', ARGV[7])
redis.call('HDEL', k, 'worker', 'lease_until')
if tonumber(redis.call('HGET', k, 'attempts')) > 0 then
  redis.call('HINCRBY', k, 'attempts', -1)
end
schedule(id)
return 1
