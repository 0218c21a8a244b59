-- Cancel a job that has not started. ARGV: 4 job id, 5 result ttl ms.
local id = ARGV[4]
local k = jkey(id)
if redis.call('HGET', k, 'state') ~= 'pending' then
  return 0
end
local f = redis.call('HMGET', k, 'lane', 'entry')
if f[1] and f[2] then
  redis.call('XDEL', f[1], f[2]) -- not yet delivered: no consumer holds it
  redis.call('HDEL', k, 'lane', 'entry')
end
finish(id, 'cancelled', ARGV[5])
bury(id, ARGV[5])
return 1
