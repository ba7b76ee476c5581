-- tripwire: a circuit breaker shared by a fleet (signal or aggregate, one prober). v1
--
-- KEYS[1]  the state hash: st (0 closed, 1 open, 2 halfOpen), gen, until (µs), prober,
--          lease (µs), epoch        tw:{cb:<key>}:state
-- KEYS[2]  the votes sorted set (member -> µs of its last local trip)  tw:{cb:<key>}:votes
-- KEYS[3]  the window hash (aggregate): '<bucket>:c|f|s' -> calls, failures, slow calls;
--          'r:<member>' -> the last bucket in which that instance reported failures
-- ARGV[1]  op: 'sync' | 'trip' | 'probe' | 'result' | 'flush'
-- ARGV[2]  now, µs ('' = the store's clock; tests and vectors pass their own)
-- ARGV[3]  this instance's id
-- ARGV[4]  open period, µs          ARGV[5]  quorum (live votes that open the fleet)
-- ARGV[6]  vote lifetime, µs        ARGV[7]  probe lease, µs
-- ARGV[8]  a fresh epoch (a whole number below 2^53), used only when the state is created
-- ARGV[9]  result: the generation probed     ARGV[10] result: 1 success, 0 failure
-- ARGV[11..13]  flush: this instance's calls, failures, slow calls since its last flush
-- ARGV[14] flush: bucket width, µs    ARGV[15] flush: bucket count
-- ARGV[16] flush: failure rate        ARGV[17] flush: slow-call rate ('' = none)
-- ARGV[18] flush: minimum calls
--
-- Nobody writes "closed" at start-up: an absent state is closed. Only the prober holding the
-- lease, with the current generation, closes or reopens the fleet's breaker.
--
-- Reply: {st, gen, remaining µs (open: until the probe; halfOpen: the lease), live votes,
--         epoch (0 = no state stored), granted (1 = this instance is the prober), store seconds,
--         store µs, window calls, window failures, instances that reported failures}
local op, member = ARGV[1], ARGV[3]
local open_us, quorum = tonumber(ARGV[4]), tonumber(ARGV[5])
local vote_us, lease_us = tonumber(ARGV[6]), tonumber(ARGV[7])
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local h = redis.call('HMGET', KEYS[1], 'st', 'gen', 'until', 'prober', 'lease', 'epoch')
local st, gen = tonumber(h[1] or 0), tonumber(h[2] or 0)
local until_, prober, lease = tonumber(h[3] or 0), h[4] or '', tonumber(h[5] or 0)
local epoch = tonumber(h[6] or 0)
local changed, granted = false, 0
local stored = epoch ~= 0
if not stored then epoch = tonumber(ARGV[8]) end

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - vote_us)
if op == 'trip' then
  redis.call('ZADD', KEYS[2], now, member)
  redis.call('PEXPIRE', KEYS[2], math.ceil(vote_us / 1000) * 2)
end
local votes = redis.call('ZCARD', KEYS[2])

local calls, fails, slows, reporters = 0, 0, 0, 0
if op == 'flush' then
  local w, width, nb = KEYS[3], tonumber(ARGV[14]), tonumber(ARGV[15])
  local bucket = math.floor(now / width)
  local oldest = bucket - nb + 1
  local dc, df, ds = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
  if dc > 0 then redis.call('HINCRBY', w, bucket .. ':c', dc) end
  if df > 0 then
    redis.call('HINCRBY', w, bucket .. ':f', df)
    redis.call('HSET', w, 'r:' .. member, bucket)
  end
  if ds > 0 then redis.call('HINCRBY', w, bucket .. ':s', ds) end
  local all = redis.call('HGETALL', w)
  for i = 1, #all, 2 do
    local k, v = all[i], tonumber(all[i + 1])
    local b, kind = string.match(k, '^(%-?%d+):(%a)$')
    if b then
      if tonumber(b) < oldest then
        redis.call('HDEL', w, k)
      elseif kind == 'c' then calls = calls + v
      elseif kind == 'f' then fails = fails + v
      else slows = slows + v end
    elseif v < oldest then
      redis.call('HDEL', w, k)
    else
      reporters = reporters + 1
    end
  end
  redis.call('PEXPIRE', w, math.ceil(width * nb / 1000) * 2)
  local rate, slow_rate = tonumber(ARGV[16]), tonumber(ARGV[17])
  local tripped = fails >= rate * calls
    or (slow_rate ~= nil and slows >= slow_rate * calls)
  if st == 0 and calls > 0 and calls >= tonumber(ARGV[18]) and tripped
      and reporters >= quorum then
    st, gen, until_, changed = 1, gen + 1, now + open_us, true
  end
end

if op == 'trip' and st == 0 and votes >= quorum then
  st, gen, until_, changed = 1, gen + 1, now + open_us, true
elseif op == 'probe' then
  if (st == 1 and now >= until_) or (st == 2 and now >= lease) then
    st, prober, lease, granted, changed = 2, member, now + lease_us, 1, true
  end
elseif op == 'result' and st == 2 and prober == member and tonumber(ARGV[9]) == gen then
  if ARGV[10] == '1' then
    st, gen, changed = 0, gen + 1, true
    redis.call('DEL', KEYS[2])
    votes = 0
  else
    st, gen, until_, changed = 1, gen + 1, now + open_us, true
  end
  prober, lease = '', 0
end

if changed then
  redis.call('HSET', KEYS[1], 'st', st, 'gen', gen, 'until', string.format('%.0f', until_),
    'prober', prober, 'lease', string.format('%.0f', lease), 'epoch', string.format('%.0f', epoch))
  redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(open_us, vote_us, lease_us) / 1000) * 2 + 60000)
end

local remaining = 0
if st == 1 then remaining = math.max(until_ - now, 0) end
if st == 2 then remaining = math.max(lease - now, 0) end
if not stored and not changed then epoch = 0 end
return {st, gen, remaining, votes, epoch, granted, math.floor(now / 1000000), now % 1000000,
  calls, fails, reporters}
