-- Give a running job back without using an attempt. ARGV: 4 worker, 5 job id, 6 run_at,
-- 7 error type, 8 error. Returns 1, or 0 when the worker had lost the lease.
local me, id = ARGV[4], ARGV[5]
if not holds(id, me) then
  return 0
end
local k = jkey(id)
note_attempt(id, 'postponed', ARGV[7], ARGV[8])
ack(id)
redis.call('HSET', k, 'state', 'pending', 'run_at', ARGV[6], 'error_type', ARGV[7],
  'error', ARGV[8])
redis.call('HDEL', k, 'worker', 'lease_until')
if tonumber(redis.call('HGET', k, 'attempts')) > 0 then
  redis.call('HINCRBY', k, 'attempts', -1)
end
schedule(id)
return 1
