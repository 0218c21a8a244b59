-- Keep a running job's lease. ARGV: 3 lease_until, 4 worker, 5 worker ttl ms, 6 job id.
-- XCLAIM ... JUSTID resets the entry's idle time, so XPENDING shows it alive too.
local lease_until, me, id = ARGV[3], ARGV[4], ARGV[6]
seen(me, ARGV[5])
if not holds(id, me) then
  return 0
end
local k = jkey(id)
redis.call('HSET', k, 'lease_until', lease_until)
redis.call('ZADD', P .. 'leases', lease_until, id)
local f = redis.call('HMGET', k, 'lane', 'entry')
if f[1] and f[2] then
  redis.call('XCLAIM', f[1], GROUP, me, 0, f[2], 'JUSTID')
end
return 1
