
local out = {}
for i = 1, #ARGV, 2 do
  local uid = ARGV[i]
  if redis.call('HGET', KEYS[3], uid) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[3], uid)
    drop(out, uid, KEYS[4])
  end
end
return out
