-- return_share(free, members, built; member_id, index) -> 1 if put back, 0 if no state
-- Takes a share off the member's count and puts it back in the free list: the share of an open
-- that failed, or (index -1) only the count, for a share the record had given to another.
-- KEYS[1]  fuli:{<tenant>}:rp:<kind>:<id>:free    list of share indexes not handed out
-- KEYS[2]  fuli:{<tenant>}:rp:<kind>:<id>:members hash member -> shares taken
-- KEYS[3]  fuli:{<tenant>}:rp:<kind>:<id>:built   present once the state was built
-- ARGV[1]  member id;  ARGV[2]  share index, or -1 to put no share back
-- Without the built marker there is nothing to put back: a rebuild reads PostgreSQL.
if redis.call('EXISTS', KEYS[3]) == 0 then
  return 0
end
if tonumber(ARGV[2]) >= 0 then
  redis.call('RPUSH', KEYS[1], ARGV[2])
end
local taken = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if taken > 0 then
  redis.call('HSET', KEYS[2], ARGV[1], taken - 1)
end
return 1
