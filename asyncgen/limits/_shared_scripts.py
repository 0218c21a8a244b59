"""The Lua scripts behind SharedRateLimiter: every change to a shared limit is one of these.

Each runs atomically in Redis and reads the server's own ``TIME``, so client clocks do
not matter. The hash ``KEYS[1]`` holds the configured limits' GCRA state (``req``,
``tok``), the step a 429 took off their pace (``cut_pace``, ``cut_at``) and, for a
limiter with no request limit configured, the key's pace that ``concurrency="auto"``
learns (see ``_pacing.AdaptiveRate``, whose rules the learned pace follows with every
process's requests counted together):

- ``lrate``, ``lceil``, ``lcut``: the learned rate (requests a second), the ceiling where
  the server said no, and when the last of the key's 429s cut them. While the last cut
  is less than ``EVIDENCE_FADES`` old, every booking is spaced at the rate (the GCRA in
  ``req``); the rate climbs towards 97 % of the ceiling and the ceiling rises a step per
  ``PROBE_AFTER`` seconds, as a local pace's do.
- ``lep``, ``lcount``, ``lno``: the episode the next measure reads (from the last resume,
  or the first booking after an idle spell), its bookings and its refusals; the sorted
  sets ``:lstarts`` and ``:lnos`` hold the last seconds' booked and refused starts, for
  the densest second (the slow start undershoots a sliding window's capacity).
"""

from __future__ import annotations

from ._pacing import (
    CLIMB_STEP,
    EVIDENCE_FADES,
    MARGIN,
    MEASURABLE,
    MIN_RATE,
    PROBE_AFTER,
    PROBE_STEP,
)
from ._pacing import STEP_DOWN as PACE_STEP_DOWN
from ._ratelimit import RECOVERY, WINDOW

__all__ = ["BOOK", "IDLE_EPISODE", "KEY_REFUSED", "REJECT", "SETTLE"]

IDLE_EPISODE = 5.0  # seconds without a booking after which the next starts a new episode

_CONSTANTS = {
    "RECOVERY": RECOVERY,
    "FADES": EVIDENCE_FADES,
    "MARGIN": MARGIN,
    "CLIMB_STEP": CLIMB_STEP,
    "PROBE_AFTER": PROBE_AFTER,
    "PROBE_STEP": PROBE_STEP,
    "PACE_STEP_DOWN": PACE_STEP_DOWN,
    "MEASURABLE": MEASURABLE,
    "MIN_RATE": MIN_RATE,
    "IDLE_EPISODE": IDLE_EPISODE,
    "WINDOW": WINDOW,
}


def _lua(source: str) -> str:
    for name, value in _CONSTANTS.items():
        source = source.replace(name, repr(float(value)))
    return source


# The learned pace now: climbing towards the ceiling since the last cut, and the ceiling
# probing upwards (as AdaptiveRate does on its successes).
_LEARNED_NOW = """
local function learned_now(rate, ceil, since)
  local top = ceil * PROBE_STEP ^ math.floor(since / PROBE_AFTER) * MARGIN
  return math.max(MIN_RATE, math.min(top, rate * CLIMB_STEP ^ since))
end
"""

# ARGV: 1 rpm, 2 tpm, 3 tokens, 4 headroom, 5 burst, 6 participant id, 7 now ('' = TIME),
# 8 the furthest ahead a start may be booked ('' = any), 9 '1' when the limiter carries
# the key's learned pace, 10 seconds of probation to begin ('' = none: a process back
# from its local share asks for it). Returns start, delay, participants, pace, the
# booking's entry in the last second's log, 1 when booked (0: come back), how far ahead
# every process's bookings reach (seconds), the learned rate now (0: none, or not in
# force), how long it stays in force (seconds), and how long the probation lasts yet.
BOOK = _lua(
    _LEARNED_NOW
    + """
local function fmt(x) return string.format('%.6f', x) end
local now = tonumber(ARGV[7])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
end
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local headroom, burst = tonumber(ARGV[4]), tonumber(ARGV[5])
local learns = ARGV[9] == '1'
-- A process back from its local share: every process keeps to its own share as well
-- until starts this key never saw have left the servers' windows.
if ARGV[10] ~= '' then
  local until_at = now + tonumber(ARGV[10])
  local was = tonumber(redis.call('HGET', KEYS[1], 'probation')) or 0
  if until_at > was then redis.call('HSET', KEYS[1], 'probation', fmt(until_at)) end
end
local probation = math.max(0, (tonumber(redis.call('HGET', KEYS[1], 'probation')) or 0) - now)
local f = redis.call('HMGET', KEYS[1], 'req', 'tok', 'cut_pace', 'cut_at')
local req, tok = tonumber(f[1]) or 0, tonumber(f[2]) or 0
local cut_pace, cut_at = tonumber(f[3]) or 1, tonumber(f[4]) or 0
local pace = math.min(1, cut_pace + RECOVERY * math.max(0, now - cut_at))
local share = pace / (1 + headroom)
local start = now
if rpm > 0 then start = math.max(start, req - burst) end
if tpm > 0 and tokens > 0 then start = math.max(start, tok) end
local learned, in_force = 0, 0
if learns then
  local l = redis.call('HMGET', KEYS[1], 'lrate', 'lceil', 'lcut', 'lep', 'llast')
  local cut = tonumber(l[3])
  if l[1] and now - cut < FADES then
    learned = learned_now(tonumber(l[1]), tonumber(l[2]), now - cut)
    in_force = cut + FADES - now
    start = math.max(start, req)
  elseif not l[4] or now - (tonumber(l[5]) or 0) > IDLE_EPISODE then
    redis.call('HSET', KEYS[1], 'lep', fmt(now), 'lcount', 0, 'lno', 0)
  end
end
local ref = ''
local within = tonumber(ARGV[8])
local who = KEYS[1] .. ':who'
redis.call('ZADD', who, now, ARGV[6])
redis.call('ZREMRANGEBYSCORE', who, '-inf', now - 30)
redis.call('PEXPIRE', who, 60000)
if tpm > 0 and tokens > 0 then
  -- The last second's token bookings, as the local limiter keeps them: spacing alone
  -- would let a window's first request in unpaid for. Entries: start -> tokens.
  local sec, sectok = KEYS[1] .. ':sec', KEYS[1] .. ':sectok'
  local old = redis.call('ZRANGEBYSCORE', sec, '-inf', '(' .. fmt(now - 1))
  if #old > 0 then
    redis.call('ZREM', sec, unpack(old))
    redis.call('HDEL', sectok, unpack(old))
  end
  local flat = redis.call('ZRANGEBYSCORE', sec, '(' .. fmt(start - 1), '+inf', 'WITHSCORES')
  local ids, at = {}, {}
  for i = 1, #flat, 2 do
    table.insert(ids, flat[i])
    table.insert(at, tonumber(flat[i + 1]))
  end
  local spent = {}
  if #ids > 0 then spent = redis.call('HMGET', sectok, unpack(ids)) end
  local used = 0
  for i = 1, #ids do used = used + (tonumber(spent[i]) or 0) end
  local capacity = tpm / 60 * share
  local i = 1
  while used + tokens > capacity and i <= #ids do -- wait for the oldest to leave
    start = math.max(start, at[i] + 1)
    used = used - (tonumber(spent[i]) or 0)
    i = i + 1
  end
end
if within and start - now > within then
  return {fmt(start), fmt(start - now), redis.call('ZCARD', who), fmt(pace), '', 0,
          fmt(math.max(req, tok) - now), fmt(learned), fmt(in_force), fmt(probation)}
end
if tpm > 0 and tokens > 0 then
  local sec, sectok = KEYS[1] .. ':sec', KEYS[1] .. ':sectok'
  ref = ARGV[6] .. ':' .. redis.call('INCR', KEYS[1] .. ':n')
  redis.call('ZADD', sec, fmt(start), ref)
  redis.call('HSET', sectok, ref, tokens)
  redis.call('PEXPIRE', sec, 60000)
  redis.call('PEXPIRE', sectok, 60000)
  redis.call('PEXPIRE', KEYS[1] .. ':n', 3600000)
end
if rpm > 0 then req = math.max(req, start) + 60 / (rpm * share) end
if learned > 0 then req = math.max(req, start) + (1 + headroom) / learned end
if tpm > 0 and tokens > 0 then tok = math.max(tok, start) + tokens * 60 / (tpm * share) end
redis.call('HSET', KEYS[1], 'req', fmt(req), 'tok', fmt(tok))
if learns then
  local starts = KEYS[1] .. ':lstarts'
  redis.call('HINCRBY', KEYS[1], 'lcount', 1)
  redis.call('HSET', KEYS[1], 'llast', fmt(now))
  redis.call('ZADD', starts, fmt(start), ARGV[6] .. ':' .. redis.call('INCR', KEYS[1] .. ':n'))
  redis.call('ZREMRANGEBYSCORE', starts, '-inf', fmt(now - 2))
  redis.call('PEXPIRE', starts, 60000)
  redis.call('PEXPIRE', KEYS[1] .. ':n', 3600000)
end
redis.call('PEXPIRE', KEYS[1], 3600000)
return {fmt(start), fmt(start - now), redis.call('ZCARD', who), fmt(pace), ref, 1,
        fmt(math.max(req, tok) - now), fmt(learned), fmt(in_force), fmt(probation)}
"""
)

# ARGV: 1 tpm, 2 token change, 3 headroom, 4 the booking's entry in the last second
SETTLE = _lua("""
local function fmt(x) return string.format('%.6f', x) end
local sectok = KEYS[1] .. ':sectok'
if ARGV[4] ~= '' and redis.call('HEXISTS', sectok, ARGV[4]) == 1 then
  local left = tonumber(redis.call('HGET', sectok, ARGV[4])) + tonumber(ARGV[2])
  redis.call('HSET', sectok, ARGV[4], fmt(math.max(0, left)))
end
local f = redis.call('HMGET', KEYS[1], 'tok', 'cut_pace', 'cut_at')
if not f[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local cut_pace, cut_at = tonumber(f[2]) or 1, tonumber(f[3]) or 0
local pace = math.min(1, cut_pace + RECOVERY * math.max(0, now - cut_at))
local interval = 60 / (tonumber(ARGV[1]) * pace / (1 + tonumber(ARGV[3])))
redis.call('HSET', KEYS[1], 'tok', fmt(tonumber(f[1]) + tonumber(ARGV[2]) * interval))
return 1
""")

# A refusal, counted for the learned pace's measure: the episode's refusals are not
# among its admitted requests. ``start``: the refused booking's start (server time).
_COUNT_REFUSAL = """
local function count_refusal(start)
  local ep = tonumber(redis.call('HGET', KEYS[1], 'lep'))
  if ep and start >= ep then redis.call('HINCRBY', KEYS[1], 'lno', 1) end
  local nos = KEYS[1] .. ':lnos'
  redis.call('ZADD', nos, string.format('%.6f', start),
             ARGV[4] .. ':' .. redis.call('INCR', KEYS[1] .. ':n'))
  redis.call('PEXPIRE', nos, 60000)
end
"""

# ARGV: 1 the refused booking's start (server time), 2 step down, 3 floor, 4 participant
# id, 5 '1' when the limiter carries the key's learned pace (count the refusal for it),
# 6 '1' when a request limit or a token limit is configured (step its pace down).
REJECT = _lua(
    _COUNT_REFUSAL
    + """
local function fmt(x) return string.format('%.6f', x) end
if ARGV[5] == '1' then count_refusal(tonumber(ARGV[1])) end
if ARGV[6] ~= '1' then return 0 end
local f = redis.call('HMGET', KEYS[1], 'cut_pace', 'cut_at')
local cut_pace, cut_at = tonumber(f[1]) or 1, tonumber(f[2]) or 0
if tonumber(ARGV[1]) <= cut_at then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local pace = math.min(1, cut_pace + RECOVERY * math.max(0, now - cut_at))
pace = math.max(tonumber(ARGV[3]), pace * tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'cut_pace', fmt(pace), 'cut_at', fmt(now))
return 1
"""
)

# One of the key's 429s (as the client's KeyPace judged it): measure the key's rate over
# the episode that just ended, every process's requests together, as AdaptiveRate.rejected
# measures its own; cut the pace, and void the turns booked at the old rate. A refusal of
# a request booked before the last cut is the same overload, already paid for (it went at
# the old rate). ARGV: 1 the refused booking's start, 2 seconds until the server admits
# again, 3 when it was booked (server time), 4 the participant id (as for REJECT).
# Returns 1 when the rate was (re)measured, 0 when the refusal was the same overload.
KEY_REFUSED = _lua(
    _LEARNED_NOW
    + _COUNT_REFUSAL
    + """
local function fmt(x) return string.format('%.6f', x) end
local refused = tonumber(ARGV[1])
count_refusal(refused)
local f = redis.call('HMGET', KEYS[1], 'lrate', 'lceil', 'lcut', 'lep', 'lcount', 'lno', 'req')
local cut = tonumber(f[3])
if cut and tonumber(ARGV[3]) <= cut then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local resume = now + tonumber(ARGV[2])
local rate, ceil = tonumber(f[1]), tonumber(f[2])
local paced = rate ~= nil and cut ~= nil and now - cut < FADES
local pace = 0
local episode = tonumber(f[4]) or now
local starts, nos = KEYS[1] .. ':lstarts', KEYS[1] .. ':lnos'
redis.call('ZREMRANGEBYSCORE', nos, '-inf', fmt(now - 2))
-- Counted up to the refused request's start: the verdicts on later ones (refusals
-- among them) may not be in yet.
local mark = '(' .. fmt(refused)
local later = redis.call('ZCOUNT', starts, mark, '+inf') - redis.call('ZCOUNT', nos, mark, '+inf')
local admitted = (tonumber(f[5]) or 0) - (tonumber(f[6]) or 0) - later
if paced then pace = learned_now(rate, ceil, now - cut) end
local sent = redis.call('ZCOUNT', starts, fmt(refused - 1), fmt(refused))
local recent = sent - redis.call('ZCOUNT', nos, fmt(refused - 1), fmt(refused))
local measured = math.max(0, admitted) / math.max(resume - episode, 1e-3)
local before = 0
if ceil then before = ceil * PACE_STEP_DOWN end
local new_episode = true
if not paced and math.max(admitted, recent) >= MEASURABLE then
  ceil = math.max(measured, recent) -- an unpaced start undershoots the limit
elseif paced and admitted >= MEASURABLE and resume - episode >= WINDOW then
  ceil = measured -- refused while paced
else -- too short to measure (a paced episode shorter than a limit's window measures
  -- what was left of a window that an earlier pace filled): back off a step
  if not paced then pace = math.max(sent, MIN_RATE) end
  ceil = math.min(ceil or pace, pace)
  rate = math.max(math.min(pace, ceil) * PACE_STEP_DOWN, MIN_RATE)
  new_episode = false
end
if new_episode then
  ceil = math.max(ceil, before, MIN_RATE)
  rate = math.max(math.min(measured, ceil) * MARGIN, MIN_RATE)
  redis.call('HSET', KEYS[1], 'lep', fmt(resume), 'lcount', 0, 'lno', 0)
end
-- The next turns begin at the resume, and after the turns already booked (at the old
-- pace, a moment ahead): those go, and are refused as the same overload; a new turn
-- among them would take a slot the old ones contend for, and be refused for nothing.
local turns = math.max(resume, tonumber(f[7]) or 0)
redis.call('HSET', KEYS[1], 'lrate', fmt(rate), 'lceil', fmt(ceil), 'lcut', fmt(now),
           'req', fmt(turns))
redis.call('PEXPIRE', KEYS[1], 3600000)
return 1
"""
)
