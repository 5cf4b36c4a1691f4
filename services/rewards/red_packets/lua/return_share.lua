-- return_share(free, members, built; member_id, index) -> 1 if put back, 0 if no state
-- Puts back a share whose open failed, and takes it off the member's count.
-- KEYS[1]  fuli:{<tenant>}:rp:<kind>:<id>:free    list of share indexes not handed out
-- KEYS[2]  fuli:{<tenant>}:rp:<kind>:<id>:members hash member -> shares taken
-- KEYS[3]  fuli:{<tenant>}:rp:<kind>:<id>:built   present once the state was built
-- ARGV[1]  member id;  ARGV[2]  share index
-- Without the built marker there is nothing to put back: a rebuild reads PostgreSQL.
if redis.call('EXISTS', KEYS[3]) == 0 then
  return 0
end
redis.call('RPUSH', KEYS[1], ARGV[2])
local taken = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if taken > 0 then
  redis.call('HSET', KEYS[2], ARGV[1], taken - 1)
end
return 1
