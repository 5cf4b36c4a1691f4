-- take_share(free, members, built, rechecked; member_id, per_member, recheck_ms)
--   -> {index, taken, recheck}
-- Hands out one share of a red-packet pool or member packet, atomically.
-- KEYS[1]  fuli:{<tenant>}:rp:<kind>:<id>:free      list of share indexes not handed out
-- KEYS[2]  fuli:{<tenant>}:rp:<kind>:<id>:members   hash member -> shares taken
-- KEYS[3]  fuli:{<tenant>}:rp:<kind>:<id>:built     present once the state was built
-- KEYS[4]  fuli:{<tenant>}:rp:<kind>:<id>:rechecked present for recheck_ms after a refusal
--                                                   was last checked against PostgreSQL
-- ARGV[1]  member id;  ARGV[2]  shares a member may take;  ARGV[3]  recheck_ms
-- Returns {index, taken, 0}; {-1, taken, recheck}: none left; {-2, taken, recheck}: member's
-- limit; {-3, 0, 0}: rebuild. recheck is 1 (at most once per recheck_ms) when the refusal is to
-- be checked against PostgreSQL, in case Redis lost a share it should still have.
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {-3, 0, 0}
end
local function refuse(code, taken)
  local due = redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[3])
  return {code, taken, due and 1 or 0}
end
local taken = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if taken >= tonumber(ARGV[2]) then
  return refuse(-2, taken)
end
local index = redis.call('LPOP', KEYS[1])
if not index then
  return refuse(-1, taken)
end
redis.call('HSET', KEYS[2], ARGV[1], taken + 1)
return {tonumber(index), taken + 1, 0}
