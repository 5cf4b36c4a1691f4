-- Put back a share whose open failed (see take_share.lua for the keys).
-- ARGV[1]  member id;  ARGV[2]  share index
if redis.call('EXISTS', KEYS[3]) == 0 then
  return 0
end
redis.call('RPUSH', KEYS[1], ARGV[2])
local taken = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if taken > 0 then
  redis.call('HSET', KEYS[2], ARGV[1], taken - 1)
end
return 1
