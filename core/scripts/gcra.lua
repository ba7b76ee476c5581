-- tripwire: a shared rate limit (GCRA) over one or more limits, all or nothing. v1
--
-- KEYS[1..n]  one key per limit, all in one hash slot: tw:{rl:<key>:<descriptor>}:<i>
-- KEYS[n+1]   the heartbeat sorted set (only when ARGV[4] names this instance)
-- ARGV[1]     cost (0 = look without taking), or '<cost>+<lease>': on an admission without a
--             wait, also take up to <lease> more units that pass now (a lease the caller
--             spends locally); the reply then gains a 9th value, the units leased
-- ARGV[2]     max wait, ns: an admission within it is reserved instead of denied
-- ARGV[3]     now, ns ('' = the store's clock; tests and vectors pass their own)
-- ARGV[4]     this instance's id for the heartbeat set ('' = no heartbeat)
-- ARGV[5]     heartbeat lifetime, ns
-- ARGV[6..]   per limit: T (emission interval, ns), tau (burst * T, ns)
--
-- A theoretical arrival time (TAT) is stored as "<seconds>:<ns>" so that every sum below is
-- an exact integer in Lua's doubles: times are taken relative to the current whole second.
--
-- Reply: {code, store seconds, store ns, wait or retry-after (ns), until full (ns),
--         remaining, deciding limit (1-based, 0 = none), live instances (0 = not asked)}
-- code 0 = admitted (after `wait` when > 0, already reserved), 1 = denied, 2 = never passes.
local cost, lease = tonumber(ARGV[1]), nil
if cost == nil then
  local c, l = string.match(ARGV[1], '^(%d+)%+(%d+)$')
  cost, lease = tonumber(c), tonumber(l)
end
local max_wait = tonumber(ARGV[2])
local base, now
if ARGV[3] ~= '' then
  local x = tonumber(ARGV[3])
  base = math.floor(x / 1e9)
  now = x - base * 1e9
else
  local t = redis.call('TIME')
  base = tonumber(t[1])
  now = tonumber(t[2]) * 1000
end
local n = (#ARGV - 5) / 2

local members = 0
if ARGV[4] ~= '' then
  local set = KEYS[n + 1]
  local ttl = tonumber(ARGV[5])
  local now_ms = base * 1000 + math.floor(now / 1e6)
  redis.call('ZADD', set, now_ms, ARGV[4])
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now_ms - math.ceil(ttl / 1e6))
  redis.call('PEXPIRE', set, math.ceil(ttl / 1e6) * 2)
  members = redis.call('ZCARD', set)
end

local tats, never = {}, 0
local at, decider = now, 0
for i = 1, n do
  local T, tau = tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i])
  if cost * T > tau then
    if never == 0 then never = i end
  else
    local tat = now
    local v = redis.call('GET', KEYS[i])
    if v then
      local s, off = string.match(v, '^(%d+):(%d+)$')
      if s then tat = (tonumber(s) - base) * 1e9 + tonumber(off) end
    end
    -- Past now + tau + max wait only when the store clock stepped back: clamp.
    if tat > now + tau + max_wait then tat = now + tau + max_wait end
    tats[i] = tat
    local pass = math.max(tat, now) + cost * T - tau
    if pass > at then at, decider = pass, i end
  end
end

local function remaining(tat)
  local T, tau = tonumber(ARGV[6]), tonumber(ARGV[7])
  return math.floor(math.max(tau - math.max(tat - now, 0), 0) / T)
end

local function reply(t)
  if lease ~= nil then t[#t + 1] = t.leased or 0 end
  t.leased = nil
  return t
end

if never > 0 then
  return reply({2, base, now, 0, 0, 0, never, members})
end
local wait = at - now
if wait > max_wait then
  local full = 0
  for i = 1, n do full = math.max(full, tats[i] - now) end
  return reply({1, base, now, wait, full, remaining(tats[1]), decider, members})
end

-- A lease: the extra units every limit still passes now, after this admission.
local extra = 0
if lease ~= nil and lease > 0 and wait == 0 and cost > 0 then
  extra = lease
  for i = 1, n do
    local T, tau = tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i])
    local after = math.max(tats[i], at) + cost * T
    extra = math.min(extra, math.floor(math.max(now + tau - after, 0) / T))
  end
end

local full = 0
for i = 1, n do
  local T = tonumber(ARGV[4 + 2 * i])
  local tat = tats[i]
  if cost > 0 then
    tat = math.max(tat, at) + (cost + extra) * T
    local s = math.floor(tat / 1e9)
    redis.call('SET', KEYS[i], string.format('%.0f:%.0f', base + s, tat - s * 1e9),
      'PX', math.ceil((tat - now) / 1e6) + 1)
    tats[i] = tat
  end
  full = math.max(full, tat - now)
end
local t = {0, base, now, wait, full, remaining(tats[1]), decider, members}
t.leased = extra
return reply(t)
