-- Generic cell rate algorithm (GCRA): one key per (tenant, caller, route group).
-- KEYS[1]  fuli:{<tenant>}:rl:<caller>:<group>   value: theoretical arrival time, ms
-- ARGV[1]  limit (requests per period)
-- ARGV[2]  period in ms
-- Returns 0 when the request is allowed, else the ms to wait before retrying.
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local interval = period / limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return math.ceil(allow_at - now)
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1)
return 0
