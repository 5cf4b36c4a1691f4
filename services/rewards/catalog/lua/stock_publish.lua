-- Mirror of a perk's stock in Redis, for fast out-of-stock answers. PostgreSQL is the record:
-- every change there bumps stock_version, and a value is only written here if its version is
-- newer than what Redis holds, so writers racing each other (or a rebuild after a flush)
-- converge on the latest PostgreSQL state.
-- KEYS[1]  fuli:{<tenant>}:stock:<sku>   hash {left, version}
-- ARGV[1]  stock left;  ARGV[2]  stock_version
-- Returns 1 if written, 0 if Redis already had this version or a newer one.
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if tonumber(ARGV[2]) > current then
  redis.call('HSET', KEYS[1], 'left', ARGV[1], 'version', ARGV[2])
  return 1
end
return 0
