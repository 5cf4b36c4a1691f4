-- take_share(free, members, built; member_id, per_member) -> {index, taken}
-- Hands out one share of a red-packet pool or member packet, atomically.
-- KEYS[1]  fuli:{<tenant>}:rp:<kind>:<id>:free    list of share indexes not handed out
-- KEYS[2]  fuli:{<tenant>}:rp:<kind>:<id>:members hash member -> shares taken
-- KEYS[3]  fuli:{<tenant>}:rp:<kind>:<id>:built   present once the state was built
-- ARGV[1]  member id;  ARGV[2]  shares a member may take
-- Returns {index, taken}; {-1, taken}: none left; {-2, taken}: member's limit; {-3, 0}: rebuild.
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {-3, 0}
end
local taken = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if taken >= tonumber(ARGV[2]) then
  return {-2, taken}
end
local index = redis.call('LPOP', KEYS[1])
if not index then
  return {-1, taken}
end
redis.call('HSET', KEYS[2], ARGV[1], taken + 1)
return {tonumber(index), taken + 1}
