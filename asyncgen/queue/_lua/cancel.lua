-- Cancel a pending job, or abort a running one (its worker then fails to renew its
-- lease and stops it). ARGV: 3 job id, 4 result ttl ms. Returns 1, or 0 when finished.
local id = ARGV[3]
local k = jkey(id)
local state = redis.call('HGET', k, 'state')
if state == 'running' then
  note_attempt(id, 'cancelled', 'Cancelled', 'cancelled while running')
  ack(id) -- out of the lane's pending list and the leases
  redis.call('HDEL', k, 'worker')
elseif state == 'pending' then
  local f = redis.call('HMGET', k, 'lane', 'entry')
  if f[1] and f[2] then
    redis.call('XDEL', f[1], f[2]) -- not yet delivered: no consumer holds it
    redis.call('HDEL', k, 'lane', 'entry')
  end
else
  return 0
end
finish(id, 'cancelled', ARGV[4])
bury(id, ARGV[4])
return 1
