-- Shared by every asyncgen queue script (prepended to each). Keys all start with the
-- prefix KEYS[1] ("asyncgen:{name}:"; the braces keep one queue in one cluster slot, and
-- as the call's key it routes the call to that slot's node). ARGV[1] is now (epoch
-- seconds, the caller's clock), ARGV[2] is "1" when the server has XACKDEL; each
-- script's own arguments follow from ARGV[3]. Times stay strings end to end: Lua's
-- tostring would round them.
local P = KEYS[1]
local NOW = ARGV[1]
local ACKDEL = ARGV[2] == '1'
local GROUP = 'workers'

local function jkey(id)
  return P .. 'job:' .. id
end

-- Close the running attempt in the job's history (the last 20 attempts are kept): who
-- ran it, from when until now, how it ended. Call it before the worker is cleared.
local function note_attempt(id, outcome, error_type, error)
  local k = jkey(id)
  local f = redis.call('HMGET', k, 'history', 'attempts', 'worker', 'started_at')
  local history = f[1] and cjson.decode(f[1]) or {}
  table.insert(history, {attempt = tonumber(f[2]) or 0, worker = f[3] or '',
    started = tonumber(f[4] or NOW), ended = tonumber(NOW), outcome = outcome,
    error_type = error_type or '', error = string.sub(error or '', 1, 500)})
  while #history > 20 do
    table.remove(history, 1)
  end
  redis.call('HSET', k, 'history', cjson.encode(history))
end

-- The value after `name` in a flat field/value list (XINFO replies, entry fields).
local function field(flat, name)
  for j = 1, #flat, 2 do
    if flat[j] == name then
      return flat[j + 1]
    end
  end
  return nil
end

-- The kind a lane serves: its key is P .. 'lane:<priority>:<kind>' (priority a number).
local function lane_kind(lane)
  return string.match(string.sub(lane, #P + 6), '^%-?%d+:(.*)$')
end

-- A worker shows it is alive: a key with a TTL, and its name in the set of workers.
local function seen(worker, ttl_ms)
  redis.call('SET', P .. 'worker:' .. worker, NOW, 'PX', ttl_ms)
  redis.call('SADD', P .. 'workers', worker)
end

-- How many workers are alive; the names of those whose key expired are dropped.
local function live_workers()
  local alive = 0
  for _, name in ipairs(redis.call('SMEMBERS', P .. 'workers')) do
    if redis.call('EXISTS', P .. 'worker:' .. name) == 1 then
      alive = alive + 1
    else
      redis.call('SREM', P .. 'workers', name)
    end
  end
  return alive
end

-- Append a pending job to its lane: one stream per (priority, kind), so a worker that
-- runs only some kinds never takes, and strands, another kind's entry.
local function enqueue(id)
  local k = jkey(id)
  local f = redis.call('HMGET', k, 'priority', 'kind')
  local lane = P .. 'lane:' .. f[1] .. ':' .. f[2]
  if redis.call('ZADD', P .. 'lanes', f[1], lane) == 1 then
    redis.pcall('XGROUP', 'CREATE', lane, GROUP, '0', 'MKSTREAM')
  end
  -- Stream ids order one lane only (two lanes can share an id); seq orders them all.
  local seq = redis.call('INCR', P .. 'seq')
  local entry = redis.call('XADD', lane, '*', 'id', id, 'seq', seq)
  redis.call('HSET', k, 'lane', lane, 'entry', entry)
  -- Wake one idle worker (BLPOP on 'wake'). One token at most: a burst wakes one worker,
  -- which wakes the next when its claim fills up (claim.lua); a token left over only
  -- costs a spare claim.
  redis.call('LPUSH', P .. 'wake', '1')
  redis.call('LTRIM', P .. 'wake', 0, 0)
end

-- A pending job goes to its lane now, or to the delayed set until its run_at.
local function schedule(id)
  local run_at = redis.call('HGET', jkey(id), 'run_at')
  if tonumber(run_at) > tonumber(NOW) then
    redis.call('ZADD', P .. 'delayed', run_at, id)
  else
    enqueue(id)
  end
end

-- Acknowledge and delete the job's stream entry (work streams are never trimmed).
local function ack(id)
  local k = jkey(id)
  local f = redis.call('HMGET', k, 'lane', 'entry')
  if f[1] and f[2] then
    if ACKDEL then
      redis.call('XACKDEL', f[1], GROUP, 'IDS', 1, f[2])
    else
      redis.call('XACK', f[1], GROUP, f[2])
      redis.call('XDEL', f[1], f[2])
    end
    redis.call('HDEL', k, 'lane', 'entry')
  end
  redis.call('ZREM', P .. 'leases', id)
end

-- A group member ended (any outcome): its group's own record, waiting on its members,
-- is made ready when this was the last. Scripts run one at a time, so when two workers
-- end a group's last two members together, one of them makes it ready, once.
local function member_ended(group)
  local gk = jkey(group)
  if redis.call('HGET', gk, 'state') == 'pending'
      and redis.call('SISMEMBER', P .. 'blocked', group) == 1
      and redis.call('HINCRBY', gk, 'waiting', -1) <= 0 then
    redis.call('SREM', P .. 'blocked', group)
    schedule(group)
  end
end

-- A job ends completed, dead or cancelled. Completed and cancelled records (and their
-- idempotency keys) expire after ttl_ms ("0": never); dead ones wait for purge, and
-- each also goes to the dead-letter stream.
local function finish(id, state, ttl_ms)
  local k = jkey(id)
  -- Wake the job's result waiters (BLPOP on 'done:<id>'; each passes the token on).
  redis.call('LPUSH', P .. 'done:' .. id, '1')
  redis.call('PEXPIRE', P .. 'done:' .. id, 60000)
  redis.call('HSET', k, 'state', state, 'finished_at', NOW)
  redis.call('HDEL', k, 'lease_until')
  redis.call('ZREM', P .. 'leases', id)
  redis.call('ZREM', P .. 'delayed', id)
  redis.call('SREM', P .. 'failed', id)
  redis.call('SREM', P .. 'blocked', id)
  redis.call('ZADD', P .. state, NOW, id)
  local group = redis.call('HGET', k, 'group')
  if group then
    member_ended(group)
  end
  if state == 'dead' then
    local f = redis.call('HMGET', k, 'kind', 'error_type', 'error')
    local entry = redis.call('XADD', P .. 'deadletter', '*', 'id', id, 'kind', f[1],
      'error_type', f[2] or '', 'error', f[3] or '', 'at', NOW)
    redis.call('HSET', k, 'deadletter', entry)
  elseif tonumber(ttl_ms) > 0 then
    redis.call('PEXPIRE', k, ttl_ms)
    local key = redis.call('HGET', k, 'idempotency_key')
    if key then
      redis.call('PEXPIRE', P .. 'idem:' .. key, ttl_ms)
    end
  end
end

-- A job ended dead or cancelled: its pending dependents go dead, and theirs after them.
local function bury(root, ttl_ms)
  local stack = {root}
  while #stack > 0 do
    local parent = table.remove(stack)
    local children = redis.call('SMEMBERS', P .. 'dependents:' .. parent)
    redis.call('DEL', P .. 'dependents:' .. parent)
    for _, child in ipairs(children) do
      local ck = jkey(child)
      if redis.call('HGET', ck, 'state') == 'pending' then
        redis.call('HSET', ck, 'error_type', 'DependencyFailed',
          'error', 'a job it depends on ended dead or cancelled')
        finish(child, 'dead', ttl_ms)
        table.insert(stack, child)
      end
    end
  end
end

-- A job completed: dependents waiting on nothing else become ready.
local function release_dependents(parent)
  local children = redis.call('SMEMBERS', P .. 'dependents:' .. parent)
  redis.call('DEL', P .. 'dependents:' .. parent)
  for _, child in ipairs(children) do
    local ck = jkey(child)
    if redis.call('HGET', ck, 'state') == 'pending'
        and redis.call('HINCRBY', ck, 'waiting', -1) <= 0 then
      redis.call('SREM', P .. 'blocked', child)
      schedule(child)
    end
  end
end

-- True when the running job's lease is held by this worker.
local function holds(id, worker)
  local f = redis.call('HMGET', jkey(id), 'state', 'worker')
  return f[1] == 'running' and f[2] == worker
end
