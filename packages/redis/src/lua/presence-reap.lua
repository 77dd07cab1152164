
local out = {}
local owned = ARGV[1] .. '.'
local graces = redis.call('HGETALL', KEYS[3])
local n = 0
for i = 1, #graces, 2 do
  local value = graces[i + 1]
  local colon = string.find(value, ':', 1, true)
  if colon and string.sub(value, colon + 1, colon + #owned) == owned then
    n = n + 1
    local deadline = string.sub(value, 1, colon - 1)
    local token = ARGV[2] .. '.' .. n
    redis.call('HSET', KEYS[3], graces[i], deadline .. ':' .. token)
    out[#out + 1] = {'grace', graces[i], token, deadline}
  end
end
local entries = redis.call('HGETALL', KEYS[4])
for i = 2, #entries, 2 do
  local uid = entries[i]
  if redis.call('HINCRBY', KEYS[1], uid, -1) <= 0 then
    if ARGV[3] and redis.call('HEXISTS', KEYS[3], uid) == 0 then
      n = n + 1
      local token = ARGV[2] .. '.' .. n
      redis.call('HSET', KEYS[3], uid, ARGV[3] .. ':' .. token)
      out[#out + 1] = {'grace', uid, token, ARGV[3]}
    elseif not ARGV[3] then
      drop(out, uid, KEYS[5])
    end
  end
end
redis.call('DEL', KEYS[4])
return out
