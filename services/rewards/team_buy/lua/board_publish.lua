-- board_publish(board, index; id, version, sort_key, score, ...) -> entries written
-- Mirror of team-buy scores in a sorted set. PostgreSQL is the record: each score change there
-- bumps a version, and an entry is only replaced by a newer version, so racing writers and a
-- rebuild from PostgreSQL converge on the latest state.
-- KEYS[1]  fuli:{<tenant>}:teambuy:<campaign>:<teams|members>        sorted set
--          (score = -cents; member = the entry's sort key)
-- KEYS[2]  fuli:{<tenant>}:teambuy:<campaign>:<teams|members>:index  hash
--          id -> "<version> <sort key>", to find and replace an entry's old sort key
-- ARGV     groups of four: id, version, sort key, score
-- Returns how many entries were written.
local written = 0
for i = 1, #ARGV, 4 do
  local id, version, sort_key, score = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local current = redis.call('HGET', KEYS[2], id)
  local newer = true
  if current then
    local gap = string.find(current, ' ', 1, true)
    if version <= tonumber(string.sub(current, 1, gap - 1)) then
      newer = false
    else
      redis.call('ZREM', KEYS[1], string.sub(current, gap + 1))
    end
  end
  if newer then
    redis.call('ZADD', KEYS[1], score, sort_key)
    redis.call('HSET', KEYS[2], id, version .. ' ' .. sort_key)
    written = written + 1
  end
end
return written
