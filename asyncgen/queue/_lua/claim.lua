-- Take up to `limit` jobs for a worker. ARGV: 3 lease_until, 4 worker, 5 worker ttl ms,
-- 6 result ttl ms, 7 limit, 8.. the kinds it runs (none: all). Returns the records'
-- hashes as one JSON array (every value is a string, so cjson keeps them exact), or nil.
local lease_until, me, ttl_ms, limit = ARGV[3], ARGV[4], ARGV[6], tonumber(ARGV[7])
local wanted, any = {}, #ARGV < 8
for i = 8, #ARGV do
  wanted[ARGV[i]] = true
end
local taken = {}

seen(me, ARGV[5])

-- Delayed jobs (run_at, retries) whose time has come move into their lanes.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', P .. 'delayed', id)
  if redis.call('HGET', jkey(id), 'state') == 'pending' then
    enqueue(id)
  end
end

local function take(id)
  local k = jkey(id)
  redis.call('HSET', k, 'state', 'running', 'worker', me, 'lease_until', lease_until,
    'started_at', NOW)
  redis.call('HINCRBY', k, 'attempts', 1)
  redis.call('HDEL', k, 'progress', 'progress_message') -- a new attempt starts from 0
  redis.call('ZADD', P .. 'leases', lease_until, id)
  local flat, record = redis.call('HGETALL', k), {}
  for j = 1, #flat, 2 do
    record[flat[j]] = flat[j + 1]
  end
  table.insert(taken, record)
end

-- Jobs whose lease ran out (their worker died) are taken over first; the stream entry
-- moves to this consumer with XCLAIM. One that has used its attempts goes dead instead.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', '(' .. NOW, 'LIMIT', 0, 100)) do
  if #taken >= limit then
    break
  end
  local k = jkey(id)
  local f = redis.call('HMGET', k, 'state', 'kind', 'attempts', 'max_attempts', 'lane', 'entry', 'worker')
  if f[1] ~= 'running' then
    redis.call('ZREM', P .. 'leases', id)
  elseif any or wanted[f[2]] then
    local lost = 'worker ' .. (f[7] or '?') .. ' stopped during the attempt (lease ran out)'
    note_attempt(id, tonumber(f[3]) >= tonumber(f[4]) and 'dead' or 'lost', 'WorkerLost', lost)
    if tonumber(f[3]) >= tonumber(f[4]) then
      ack(id)
      redis.call('HSET', k, 'error_type', 'WorkerLost',
        'error', 'worker ' .. (f[7] or '?') .. ' stopped during the last attempt')
      finish(id, 'dead', ttl_ms)
      bury(id, ttl_ms)
    else
      if f[5] and f[6] then
        redis.call('XCLAIM', f[5], GROUP, me, 0, f[6])
      end
      take(id)
    end
  end
end

-- The enqueue sequence number of the entry XREADGROUP '>' would deliver next, or nil.
local function next_seq(lane)
  local last = '0-0'
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', lane)) do
    if field(g, 'name') == GROUP then
      last = field(g, 'last-delivered-id')
    end
  end
  local r = redis.call('XRANGE', lane, '(' .. last, '+', 'COUNT', 1)
  if #r == 0 then
    return nil
  end
  return tonumber(field(r[1][2], 'seq') or '0')
end

-- Read entries from one lane; returns how many it delivered (stale ones are dropped).
local function read(lane, count)
  local reply = redis.call('XREADGROUP', 'GROUP', GROUP, me, 'COUNT', count, 'STREAMS', lane, '>')
  if not reply then
    return 0
  end
  local entries = reply[1][2]
  for _, entry in ipairs(entries) do
    local id = entry[2][2]
    local f = redis.call('HMGET', jkey(id), 'state', 'entry')
    if f[1] == 'pending' and f[2] == entry[1] then
      take(id)
    else -- a stale entry (its job was cancelled, purged or expired): drop it
      redis.call('XACK', lane, GROUP, entry[1])
      redis.call('XDEL', lane, entry[1])
    end
  end
  return #entries
end

-- Lanes by priority, highest first; within one priority the oldest entry wins (FIFO):
-- with a single lane that is stream order, with several the heads are compared.
local lanes = redis.call('ZREVRANGE', P .. 'lanes', 0, -1, 'WITHSCORES')
local i = 1
while i <= #lanes and #taken < limit do
  local score, group = lanes[i + 1], {}
  while i <= #lanes and lanes[i + 1] == score do
    if any or wanted[lane_kind(lanes[i])] then
      table.insert(group, lanes[i])
    end
    i = i + 2
  end
  if #group == 1 then
    while #taken < limit and read(group[1], limit - #taken) > 0 do
    end
  else
    while #taken < limit and #group > 1 do
      local lane, best = nil, nil
      for _, candidate in ipairs(group) do
        local seq = next_seq(candidate)
        if seq and (best == nil or seq < best) then
          lane, best = candidate, seq
        end
      end
      if lane == nil or read(lane, 1) == 0 then
        break
      end
    end
  end
end
if #taken == 0 then
  return false
end
if #taken >= limit then
  -- This worker is full and there may be more: wake another idle worker to help.
  redis.call('LPUSH', P .. 'wake', '1')
  redis.call('LTRIM', P .. 'wake', 0, 0)
end
return cjson.encode(taken)
