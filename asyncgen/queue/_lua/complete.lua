-- Store a result. ARGV: 3 worker, 4 job id, 5 result (JSON), 6 result ttl ms.
local me, id = ARGV[3], ARGV[4]
if not holds(id, me) then
  return 0
end
redis.call('HSET', jkey(id), 'result', ARGV[5])
note_attempt(id, 'ok')
ack(id)
finish(id, 'completed', ARGV[6])
release_dependents(id)
return 1
