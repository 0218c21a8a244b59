-- Store a new job. ARGV: 3 id, 4 idempotency key or '', 5 result ttl ms, 6 the record's
-- field/value pairs as one JSON array of strings, 7 unique key or '', 8 ms the unique key
-- holds or '' (while the job is pending or running), 9 number of dependencies, then
-- their ids.
local id, idem, ttl_ms, ndeps = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[9])
local ukey, unique_ms = ARGV[7], ARGV[8]
if idem ~= '' then
  local first = redis.call('GET', P .. 'idem:' .. idem)
  if first then
    return first -- the key's first job
  end
end
if ukey ~= '' then
  local held = redis.call('GET', P .. 'uniq:' .. ukey)
  if held then
    local state = redis.call('HGET', jkey(held), 'state')
    if state == 'pending' or state == 'running' then
      return held -- a job with this unique key has not ended yet
    end
  end
end
if idem ~= '' then
  redis.call('SET', P .. 'idem:' .. idem, id)
end
local k = jkey(id)
if redis.call('EXISTS', k) == 1 then
  return id -- sent again after a dropped connection: stored already
end
redis.call('HSET', k, unpack(cjson.decode(ARGV[6])))
if ukey ~= '' then
  if unique_ms ~= '' then
    redis.call('SET', P .. 'uniq:' .. ukey, id, 'PX', unique_ms)
  else
    redis.call('SET', P .. 'uniq:' .. ukey, id)
  end
end

local waiting, failed = 0, false
for i = 10, 9 + ndeps do
  local dep = ARGV[i]
  local state = redis.call('HGET', jkey(dep), 'state')
  if state == 'dead' or state == 'cancelled' or not state then
    failed = true
  elseif state ~= 'completed' then
    redis.call('SADD', P .. 'dependents:' .. dep, id)
    waiting = waiting + 1
  end
end
-- A group's own record waits for its members (added before it) to end, whatever the
-- outcome; it is listed among the queue's groups, newest last.
local members = redis.call('HGET', k, 'members')
if members then
  for _, member in ipairs(cjson.decode(members)) do
    local state = redis.call('HGET', jkey(member), 'state')
    if state == 'pending' or state == 'running' then
      waiting = waiting + 1
    end
  end
  redis.call('ZADD', P .. 'groups', redis.call('HGET', k, 'created_at'), id)
end
if failed then
  redis.call('HSET', k, 'error_type', 'DependencyFailed',
    'error', 'a job it depends on ended dead or cancelled, or no longer exists')
  finish(id, 'dead', ttl_ms)
  bury(id, ttl_ms)
elseif waiting > 0 then
  redis.call('HSET', k, 'waiting', waiting)
  redis.call('SADD', P .. 'blocked', id)
else
  schedule(id)
end
return id
