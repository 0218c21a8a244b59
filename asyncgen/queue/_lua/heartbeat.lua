-- Keep a running job's lease. ARGV: 4 lease_until, 5 worker, 6 worker ttl ms, 7 job id.
-- XCLAIM ... JUSTID resets the entry's idle time, so XPENDING shows it alive too.
local lease_until, me, id = ARGV[4], ARGV[5], ARGV[7]
seen(me, ARGV[6])
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
