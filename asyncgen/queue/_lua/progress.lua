-- Store a running job's progress. ARGV: 3 worker, 4 job id, 5 fraction, 6 message
-- ('' for none). Returns 1, or 0 when the worker no longer holds the job.
local me, id = ARGV[3], ARGV[4]
if not holds(id, me) then
  return 0
end
if ARGV[6] == '' then
  redis.call('HSET', jkey(id), 'progress', ARGV[5])
  redis.call('HDEL', jkey(id), 'progress_message')
else
  redis.call('HSET', jkey(id), 'progress', ARGV[5], 'progress_message', ARGV[6])
end
return 1
