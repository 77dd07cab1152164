
local function drop(out, uid, ver)
  if (tonumber(redis.call('HGET', KEYS[1], uid)) or 0) > 0 then return end
  if redis.call('HEXISTS', KEYS[3], uid) == 1 then return end
  local name = redis.call('HGET', KEYS[2], uid) or uid
  redis.call('HDEL', KEYS[1], uid)
  redis.call('HDEL', KEYS[2], uid)
  out[#out + 1] = {'offline', uid, name, next_version(ver)}
end
