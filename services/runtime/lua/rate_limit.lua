-- Generic cell rate algorithm (GCRA): one key per (tenant, caller, route group). A caller may
-- take several requests at once (a process's lease), as many as fit, up to ARGV[3].
-- KEYS[1]  fuli:{<tenant>}:rl:<caller>:<group>   value: theoretical arrival time, ms
-- ARGV[1]  limit (requests per period)
-- ARGV[2]  period in ms
-- ARGV[3]  requests wanted (at least 1)
-- Returns {granted, 0} when at least one request is allowed, else {0, ms to wait}.
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local interval = period / limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
-- n more requests fit while tat + n * interval - period <= now
local fit = math.floor((now + period - tat) / interval)
if fit < 1 then
  return {0, math.ceil(tat + interval - period - now)}
end
local granted = math.min(wanted, fit)
local new_tat = tat + granted * interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1)
return {granted, 0}
