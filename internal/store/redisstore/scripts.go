package redisstore

import "github.com/redis/go-redis/v9"

// The scripts run atomically on the server, which is what makes replicas
// agree: no other client's command runs between a script's read and its
// write. redis.NewScript runs them by EVALSHA and falls back to EVAL when
// the server has not cached them (after a restart, on a new node).
//
// Scripts that call TIME and then write start with replicate_commands:
// Redis 3.2 to 4 would otherwise refuse the write after a random command;
// from Redis 5 it is the default and from 7 a no-op.

// createKeyScript stores a key unless its name or hash is taken.
// KEYS: keys hash, keyhash hash. ARGV: name, hash, JSON.
// Returns 0 on success, 1 if the name is taken, 2 if the hash is.
var createKeyScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 0
`)

// updateKeyScript replaces a key's JSON if the key exists and its stored
// hash is the given one, so the hash index can never disagree with the key.
// KEYS: keys hash. ARGV: name, hash, JSON.
// Returns {1, ""} on success, {0, ""} if there is no such key, and
// {2, stored hash} if the hash differs.
var updateKeyScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return {0, ''} end
local ok, k = pcall(cjson.decode, old)
local h = ''
if ok and type(k) == 'table' and type(k.hash) == 'string' then h = k.hash end
if h ~= ARGV[2] then return {2, h} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return {1, ''}
`)

// keyByHashScript looks a key up through the hash index in one round trip:
// it runs on every authenticated request.
// KEYS: keys hash, keyhash hash. ARGV: hash. Returns the JSON or nil.
var keyByHashScript = redis.NewScript(`
local name = redis.call('HGET', KEYS[2], ARGV[1])
if not name then return false end
return redis.call('HGET', KEYS[1], name)
`)

// allowScript is GCRA (see internal/gcra) on the server's clock, in
// microseconds so that epoch times stay exact in Lua's doubles. The bucket
// holds the theoretical arrival time (TAT) and expires when the bucket is
// full again, so idle buckets cost nothing.
// KEYS: bucket. ARGV: emission interval µs, tolerance µs.
// Returns {allowed, remaining, retry after µs, reset µs}.
var allowScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local start = tat
if start < now then start = now end
local newtat = start + interval
local ahead = newtat - now
if ahead > tau then
  return {0, 0, math.ceil(ahead - tau), math.ceil(start - now)}
end
local ttl = math.max(1, math.ceil(ahead / 1000))
redis.call('SET', KEYS[1], string.format('%.17g', newtat), 'PX', string.format('%d', ttl))
return {1, math.floor((tau - ahead) / interval), 0, math.ceil(ahead)}
`)

// consumeScript counts one request: against the quota window if there is
// one (refusing, and counting nothing, at the limit), and in the day's
// usage. The window's counter expires a day after the window ends, or a
// day from now if that is already past.
// KEYS: usage hash, then the quota counter when there is a window.
// ARGV: day, limit, expiry (Unix ms).
// Returns {allowed, used}.
var consumeScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local used = 0
if KEYS[2] then
  used = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  if used >= tonumber(ARGV[2]) then return {0, used} end
  used = redis.call('INCR', KEYS[2])
  if used == 1 then
    local exp = tonumber(ARGV[3])
    local t = redis.call('TIME')
    local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if exp <= nowms then exp = nowms + 86400000 end
    redis.call('PEXPIREAT', KEYS[2], string.format('%d', exp))
  end
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return {1, used}
`)

// meterScript meters reps requests with the same limits, one after
// another: for each, allowScript for each bucket in turn, stopping at the
// first refusal, then, if none refused and a key is given, consumeScript.
// A request's limits take one script; a batch's requests of one key and
// plan take one too. One TIME serves them all, since nothing else runs
// while the script does: reps requests are metered as if they arrived
// together, each one after the last, as reps scripts in a row would.
// KEYS: n buckets, then the usage hash and the quota counter when given.
// ARGV: n, then emission interval µs and tolerance µs for each bucket (an
// interval of 0 is a rate of 0, which refuses), then day, limit, expiry
// (Unix ms) as consumeScript's when there is a key, and last reps.
// Returns, for each request, {refused bucket (0-based) or -1, counted,
// quota allowed, used}, then {allowed, remaining, retry after µs, reset
// µs} for each bucket checked, padded with zeros to 4 + 4n values.
var meterScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local n = tonumber(ARGV[1])
local reps = tonumber(ARGV[#ARGV])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local usage = KEYS[n + 1]
local quota = KEYS[n + 2]
-- The state is read once and written once for all reps requests: nothing
-- else runs in between, so this is what reps scripts in a row would do.
local tats, dirty = {}, {}
for i = 1, n do
  if tonumber(ARGV[2 * i]) > 0 then
    tats[i] = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  end
end
local used, was, limit = 0, 0, 0
if quota then
  used = tonumber(redis.call('GET', quota) or '0') or 0
  was = used
  limit = tonumber(ARGV[2 * n + 3])
end
local counted = 0
local out = {}
for _ = 1, reps do
  local base = #out
  out[base + 1] = -1
  out[base + 2] = 0
  out[base + 3] = 0
  out[base + 4] = 0
  local refused = false
  for i = 1, n do
    local interval = tonumber(ARGV[2 * i])
    local tau = tonumber(ARGV[2 * i + 1])
    if interval <= 0 then
      out[base + 1] = i - 1
      for _ = 1, 4 do out[#out + 1] = 0 end
      refused = true
      break
    end
    local start = tats[i]
    if start < now then start = now end
    local newtat = start + interval
    local ahead = newtat - now
    if ahead > tau then
      out[base + 1] = i - 1
      out[#out + 1] = 0
      out[#out + 1] = 0
      out[#out + 1] = math.ceil(ahead - tau)
      out[#out + 1] = math.ceil(start - now)
      refused = true
      break
    end
    tats[i] = newtat
    dirty[i] = true
    out[#out + 1] = 1
    out[#out + 1] = math.floor((tau - ahead) / interval)
    out[#out + 1] = 0
    out[#out + 1] = math.ceil(ahead)
  end
  if not refused and usage then
    out[base + 2] = 1
    if not quota or used < limit then
      if quota then used = used + 1 end
      counted = counted + 1
      out[base + 3] = 1
    end
    out[base + 4] = used
  end
  while #out < base + 4 + 4 * n do out[#out + 1] = 0 end
end
for i = 1, n do
  if dirty[i] then
    local ttl = math.max(1, math.ceil((tats[i] - now) / 1000))
    redis.call('SET', KEYS[i], string.format('%.17g', tats[i]), 'PX', string.format('%d', ttl))
  end
end
if used > was then
  redis.call('INCRBY', quota, used - was)
  if was == 0 then
    local exp = tonumber(ARGV[2 * n + 4])
    local nowms = math.floor(now / 1000)
    if exp <= nowms then exp = nowms + 86400000 end
    redis.call('PEXPIREAT', quota, string.format('%d', exp))
  end
end
if counted > 0 then
  redis.call('HINCRBY', usage, ARGV[2 * n + 2], counted)
end
return out
`)
