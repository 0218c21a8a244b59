-- Store a result. ARGV: 4 worker, 5 job id, 6 result (JSON), 7 result ttl ms.
local me, id = ARGV[4], ARGV[5]
if not holds(id, me) then
  return 0
end
redis.call('HSET', jkey(id), 'result', ARGV[6])
note_attempt(id, 'ok')
ack(id)
finish(id, 'completed', ARGV[7])
release_dependents(id)
return 1
