-- Give a running job back untouched (a draining worker). ARGV: 4 worker, 5 job id.
-- Its attempt is undone; it goes to the back of its lane (stream ids only grow).
local me, id = ARGV[4], ARGV[5]
if not holds(id, me) then
  return 0
end
local k = jkey(id)
ack(id)
redis.call('HSET', k, 'state', 'pending')
redis.call('HDEL', k, 'worker', 'lease_until')
if tonumber(redis.call('HGET', k, 'attempts')) > 0 then
  redis.call('HINCRBY', k, 'attempts', -1)
end
schedule(id)
return 1
